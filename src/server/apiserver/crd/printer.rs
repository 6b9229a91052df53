//! `additionalPrinterColumns`: the Table columns of a custom resource,
//! each a simple JSONPath into the object, with cells typed as upstream's
//! table convertor types them (a `date` becomes an age such as `5m`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One column as the CRD declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: u8,
    pub path: Path,
}

/// A parsed JSONPath of the subset CRDs use: `.a.b`, `['a.b']`, `[0]`,
/// `[*]` and `[?(@.type=="Ready")]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path(Vec<Step>);

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.a.b == literal)]` (or `!=`).
    Filter {
        field: Vec<String>,
        equal: bool,
        value: Value,
    },
}

/// The reason a JSONPath is refused, for the CRD's validation.
pub fn parse(src: &str) -> Result<Path, String> {
    let s = src.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let s = s.strip_prefix('$').unwrap_or(s);
    let b = s.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut name = String::new();
                let mut end = s.len();
                let mut escaped = false;
                for (at, c) in s[start..].char_indices() {
                    if escaped {
                        name.push(c);
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '.' || c == '[' {
                        end = start + at;
                        break;
                    } else {
                        name.push(c);
                    }
                }
                if name.is_empty() {
                    return Err(format!("empty field name at {start} in {src:?}"));
                }
                steps.push(Step::Field(name));
                i = end;
            }
            b'[' => {
                let end = s[i..]
                    .find(']')
                    .map(|e| e + i)
                    .ok_or_else(|| format!("unterminated [ in {src:?}"))?;
                let inner = s[i + 1..end].trim();
                steps.push(bracket(inner, src)?);
                i = end + 1;
            }
            _ => return Err(format!("unexpected {:?} in {src:?}", b[i] as char)),
        }
    }
    if steps.is_empty() {
        return Err(format!("{src:?} selects nothing"));
    }
    Ok(Path(steps))
}

fn bracket(inner: &str, src: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(Step::Index(n));
    }
    if let Some(q) = inner
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
    {
        return Ok(Step::Field(q.to_string()));
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
        let (lhs, rhs, equal) = if let Some((l, r)) = f.split_once("==") {
            (l, r, true)
        } else if let Some((l, r)) = f.split_once("!=") {
            (l, r, false)
        } else {
            return Err(format!("unsupported filter in {src:?}"));
        };
        let field: Vec<String> = lhs
            .trim()
            .strip_prefix("@.")
            .ok_or_else(|| format!("a filter must compare @.<field> in {src:?}"))?
            .split('.')
            .map(str::to_string)
            .collect();
        let r = rhs.trim();
        let value = if let Some(q) = r
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| r.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        {
            json!(q)
        } else {
            serde_json::from_str(r).map_err(|_| format!("unsupported literal {r:?} in {src:?}"))?
        };
        return Ok(Step::Filter {
            field,
            equal,
            value,
        });
    }
    Err(format!("unsupported [{inner}] in {src:?}"))
}

impl Path {
    /// The first value the path selects.
    pub fn first<'v>(&self, obj: &'v Value) -> Option<&'v Value> {
        let mut cur: Vec<&Value> = vec![obj];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in cur {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(n) => {
                        if let Some(a) = v.as_array() {
                            let i = if *n < 0 { a.len() as i64 + n } else { *n };
                            next.extend(usize::try_from(i).ok().and_then(|i| a.get(i)));
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter {
                        field,
                        equal,
                        value,
                    } => {
                        for item in v.as_array().into_iter().flatten() {
                            let got = field.iter().try_fold(item, |x, k| x.get(k.as_str()));
                            if (got == Some(value)) == *equal {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            cur = next;
        }
        cur.into_iter().next()
    }
}

/// The cell of `col` for `obj`, typed as upstream's convertor types it
/// (null where the path selects nothing or a value of another type).
pub fn cell(col: &Column, obj: &Value, now: DateTime<Utc>) -> Value {
    let Some(v) = col.path.first(obj) else {
        return Value::Null;
    };
    match (col.type_.as_str(), v) {
        ("string", Value::String(s)) => json!(s),
        ("string", Value::Null) => Value::Null,
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match crate::api::duration::parse_time(s) {
            Some(_) => json!(crate::api::duration::since(Some(s), now)),
            None => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let obj = json!({"spec": {"replicas": 3, "a.b": "dotted"},
            "status": {"conditions": [{"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}}});
        let get = |p: &str| parse(p).unwrap().first(&obj).cloned();
        assert_eq!(get(".spec.replicas"), Some(json!(3)));
        assert_eq!(
            get(".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(get(".status.conditions[-1].type"), Some(json!("Ready")));
        assert_eq!(get(".status.conditions[*].type"), Some(json!("Synced")));
        assert_eq!(
            get(".metadata.labels.app\\.kubernetes\\.io/name"),
            Some(json!("web"))
        );
        assert_eq!(get(".spec['a.b']"), Some(json!("dotted")));
        let named = json!({"spec": {"größe": 2}});
        assert_eq!(parse(".spec.größe").unwrap().first(&named), Some(&json!(2)));
        assert_eq!(get(".spec.missing"), None);
        assert!(parse("spec").is_err());
        assert!(parse(".spec[").is_err());
    }

    #[test]
    fn cells_are_typed() {
        let col = |t: &str, p: &str| Column {
            name: "c".into(),
            type_: t.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            path: parse(p).unwrap(),
        };
        let obj = json!({"spec": {"n": 3.0, "s": "x", "m": {"a": 1}},
            "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        let now = "2026-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(cell(&col("integer", ".spec.n"), &obj, now), json!(3));
        assert_eq!(cell(&col("string", ".spec.s"), &obj, now), json!("x"));
        assert_eq!(
            cell(&col("string", ".spec.m"), &obj, now),
            json!("{\"a\":1}")
        );
        assert_eq!(cell(&col("boolean", ".spec.s"), &obj, now), Value::Null);
        assert_eq!(
            cell(&col("date", ".metadata.creationTimestamp"), &obj, now),
            json!("5m")
        );
    }
}

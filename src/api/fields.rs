//! Field selectors (`?fieldSelector=`): a port of apimachinery's
//! `fields.ParseSelector`. Terms are `field=value`, `field==value` or
//! `field!=value`, comma-joined; in values `\,`, `\=` and `\\` escape the
//! separators. Which fields a kind supports is decided by the API server
//! (see `server::apiserver::fieldsel`).

/// Why a field selector could not be parsed; messages are the real ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax { selector: String, term: String },
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// Go formats the rune with `%v`, i.e. as its code point number.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedRune(char),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub op: FieldOp,
    pub value: String,
}

/// A conjunction of field terms; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

/// `==` is tried before `=` so that `a==b` does not leave `=b` as the value;
/// the first operator found from the left splits the term.
const OPERATORS: [(&str, FieldOp); 3] = [
    ("!=", FieldOp::NotEquals),
    ("==", FieldOp::Equals),
    ("=", FieldOp::Equals),
];

impl FieldSelector {
    pub fn parse(selector: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut parts = split_terms(selector);
        // Sorted as in Go, which makes the first reported error deterministic.
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_string(),
                    term: part.to_string(),
                });
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// `get` returns a field's value for the object; a field the object does
    /// not have counts as the empty string (as `fields.Set` lookups do).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let v = get(&t.field).unwrap_or_default();
            match t.op {
                FieldOp::Equals => v == t.value,
                FieldOp::NotEquals => v != t.value,
            }
        })
    }

    /// The value a term requires exactly, e.g. `metadata.name` for a
    /// single-object watch; lets the server narrow a list to one key.
    pub fn requires_exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equals)
            .map(|t| t.value.as_str())
    }
}

impl std::fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Splits on commas not preceded by a backslash; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in OPERATORS {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(FieldSelectorError::InvalidEscape(format!("\\{c}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedRune(c)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscape("\\".to_string()));
    }
    Ok(out)
}

/// `fields.EscapeValue`.
pub fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn getter<'a>(m: &'a HashMap<&str, &str>) -> impl Fn(&str) -> Option<String> + 'a {
        move |f| m.get(f).map(|v| v.to_string())
    }

    #[test]
    fn parses_operators_and_matches() {
        let obj: HashMap<&str, &str> = [
            ("metadata.name", "web"),
            ("spec.nodeName", "n1"),
            ("status.phase", "Running"),
        ]
        .into_iter()
        .collect();
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.name=web,spec.nodeName=n1", true),
            ("metadata.name=web,spec.nodeName!=n1", false),
            ("spec.nodeName=", false),
            ("spec.missing=", true),
            ("spec.missing!=", false),
            (",metadata.name=web,", true),
        ];
        for (s, want) in cases {
            let sel = FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sel.matches(getter(&obj)), *want, "{s}");
        }
    }

    #[test]
    fn escapes() {
        let sel = FieldSelector::parse(r"a=x\,y\=z\\w,b=c").unwrap_or_default();
        assert_eq!(sel.terms.len(), 2);
        assert_eq!(sel.terms[0].value, r"x,y=z\w");
        assert_eq!(sel.to_string(), r"a=x\,y\=z\\w,b=c");
        assert_eq!(sel.requires_exact("b"), Some("c"));
        // The first operator splits: the rest is the value and must be escaped.
        assert_eq!(
            FieldSelector::parse("a=b=c").err().map(|e| e.to_string()),
            Some("invalid field selector: unescaped character in value: 61".into())
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").err().map(|e| e.to_string()),
            Some(r"invalid field selector: invalid escape sequence: \x".into())
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").err().map(|e| e.to_string()),
            Some(r"invalid field selector: invalid escape sequence: \".into())
        );
        assert_eq!(
            FieldSelector::parse("a=b,noop")
                .err()
                .map(|e| e.to_string()),
            Some("invalid selector: 'a=b,noop'; can't understand 'noop'".into())
        );
        let sel = FieldSelector::parse("a!=b").unwrap_or_default();
        assert_eq!(sel.terms[0].op, FieldOp::NotEquals);
        assert_eq!(sel.requires_exact("a"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = FieldSelector::parse(&s);
        }

        #[test]
        fn escaped_values_round_trip(field in "[a-z][a-zA-Z.]{0,10}", value in "\\PC{0,12}") {
            let sel = FieldSelector { terms: vec![FieldTerm { field, op: FieldOp::Equals, value }] };
            let again = FieldSelector::parse(&sel.to_string());
            prop_assert_eq!(again.ok(), Some(sel));
        }
    }
}

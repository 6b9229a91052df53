//! The template functions (Go's built-ins and docker's additions) and Go's
//! `%v` printing of JSON values.

use serde_json::Value;

/// Go's type name for a value decoded from JSON (for error messages).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's truth: false, 0, "", nil and empty collections are false.
pub fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    // Go's %v for floats is %g: exponent form from 1e21 up.
    if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else {
        f.to_string()
    }
}

/// Go's `%v`.
pub fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(print_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(o) => {
            let mut kv: Vec<(&String, &Value)> = o.iter().collect();
            kv.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = kv
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", print_value(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "error calling {name}: wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string_arg<'a>(name: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| {
        format!(
            "wrong type for value; expected string; got {} (in {name})",
            type_name(v)
        )
    })
}

fn int_arg(name: &str, v: &Value) -> Result<i64, String> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| {
            format!(
                "wrong type for value; expected int; got {} (in {name})",
                type_name(v)
            )
        })
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y)
                .ok_or_else(|| format!("error calling {name}: incomparable numbers"))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if name == "eq" || name == "ne" => Ok(x.cmp(y)),
        (Value::Null, Value::Null) if name == "eq" || name == "ne" => Ok(std::cmp::Ordering::Equal),
        _ => Err(format!(
            "error calling {name}: incompatible types for comparison"
        )),
    }
}

/// Go's strings.Title: the first letter of each word upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

/// Go's fmt.Sprint: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&print_value(a));
    }
    out
}

pub fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    use std::cmp::Ordering;
    let s = |x: String| Ok(Value::String(x));
    match name {
        "json" => {
            want_args(name, args, 1)?;
            serde_json::to_string(&args[0])
                .map(Value::String)
                .map_err(|e| format!("error calling json: {e}"))
        }
        "print" => s(sprint(args)),
        "println" => {
            let items: Vec<String> = args.iter().map(print_value).collect();
            s(format!("{}\n", items.join(" ")))
        }
        "printf" => {
            let Some((format, rest)) = args.split_first() else {
                return Err("error calling printf: wrong number of args".into());
            };
            s(printf(string_arg(name, format)?, rest))
        }
        "len" => {
            want_args(name, args, 1)?;
            let n = match &args[0] {
                Value::String(x) => x.len(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        type_name(other)
                    ))
                }
            };
            Ok(Value::from(n))
        }
        "index" => {
            let Some((item, keys)) = args.split_first() else {
                return Err("error calling index: wrong number of args".into());
            };
            let mut cur = item.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Array(a), _) => {
                        let i = int_arg(name, k)?;
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| a.get(i))
                            .cloned()
                            .ok_or_else(|| {
                                format!("error calling index: index out of range: {i}")
                            })?
                    }
                    // A missing key is the zero value (empty for the
                    // string maps docker has: labels, options).
                    (Value::Object(o), Value::String(key)) => {
                        o.get(key).cloned().unwrap_or(Value::String(String::new()))
                    }
                    (Value::Null, _) => {
                        return Err("error calling index: index of untyped nil".into())
                    }
                    (other, _) => {
                        return Err(format!(
                            "error calling index: can't index item of type {}",
                            type_name(other)
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            let Some((item, idx)) = args.split_first() else {
                return Err("error calling slice: wrong number of args".into());
            };
            if idx.len() > 2 {
                return Err("error calling slice: too many slice indexes".into());
            }
            let len = match item {
                Value::String(x) => x.len(),
                Value::Array(a) => a.len(),
                other => {
                    return Err(format!(
                        "error calling slice: can't slice item of type {}",
                        type_name(other)
                    ))
                }
            };
            let mut bounds = [0usize, len];
            for (i, k) in idx.iter().enumerate() {
                let v = int_arg(name, k)?;
                bounds[i] = usize::try_from(v)
                    .ok()
                    .filter(|v| *v <= len)
                    .ok_or_else(|| format!("error calling slice: index out of range: {v}"))?;
            }
            let [lo, hi] = bounds;
            if lo > hi {
                return Err(format!(
                    "error calling slice: invalid slice index: {lo} > {hi}"
                ));
            }
            match item {
                Value::String(x) => x
                    .get(lo..hi)
                    .map(|t| Value::String(t.to_string()))
                    .ok_or_else(|| "error calling slice: index inside a character".into()),
                Value::Array(a) => Ok(Value::Array(a[lo..hi].to_vec())),
                _ => Ok(Value::Null),
            }
        }
        "not" => {
            want_args(name, args, 1)?;
            Ok(Value::Bool(!truth(&args[0])))
        }
        "and" => Ok(args
            .iter()
            .find(|a| !truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "or" => Ok(args
            .iter()
            .find(|a| truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "eq" => {
            let Some((first, rest)) = args.split_first() else {
                return Err("error calling eq: missing argument for comparison".into());
            };
            for r in rest {
                if compare(name, first, r)? == Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, args, 2)?;
            let o = compare(name, &args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "ne" => o != Ordering::Equal,
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        "join" => {
            want_args(name, args, 2)?;
            let sep = string_arg(name, &args[1])?;
            let items: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(print_value).collect(),
                Value::Null => Vec::new(),
                other => {
                    return Err(format!(
                        "error calling join: cannot join {}",
                        type_name(other)
                    ))
                }
            };
            s(items.join(sep))
        }
        "split" => {
            want_args(name, args, 2)?;
            let (text, sep) = (string_arg(name, &args[0])?, string_arg(name, &args[1])?);
            Ok(Value::Array(
                text.split(sep).map(|p| Value::String(p.into())).collect(),
            ))
        }
        "lower" => {
            want_args(name, args, 1)?;
            s(string_arg(name, &args[0])?.to_lowercase())
        }
        "upper" => {
            want_args(name, args, 1)?;
            s(string_arg(name, &args[0])?.to_uppercase())
        }
        "title" => {
            want_args(name, args, 1)?;
            s(title(string_arg(name, &args[0])?))
        }
        "pad" => {
            want_args(name, args, 3)?;
            let text = string_arg(name, &args[0])?;
            let (l, r) = (int_arg(name, &args[1])?, int_arg(name, &args[2])?);
            let sp = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
            s(format!("{}{text}{}", sp(l), sp(r)))
        }
        "truncate" => {
            want_args(name, args, 2)?;
            let text = string_arg(name, &args[0])?;
            let n = usize::try_from(int_arg(name, &args[1])?).unwrap_or(0);
            s(text.chars().take(n).collect())
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

/// Go's fmt.Sprintf for the verbs scripts use: `%v %s %d %q %t %x %X %f
/// %%`, with flags `-` and `0`, width and precision.
pub fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero) = (false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let digits = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        let width = digits(&mut chars);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(digits(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = match (verb, arg) {
            ('v' | 's', Value::String(x)) => match precision {
                Some(p) => x.chars().take(p).collect(),
                None => x.clone(),
            },
            ('v', _) => print_value(arg),
            ('q', Value::String(x)) => crate::api::validation::causes::go_str(x),
            ('t', Value::Bool(b)) => b.to_string(),
            ('d', Value::Number(n)) if n.as_i64().is_some() => number(n),
            ('x', Value::Number(n)) if n.as_i64().is_some() => {
                format!("{:x}", n.as_i64().unwrap_or(0))
            }
            ('X', Value::Number(n)) if n.as_i64().is_some() => {
                format!("{:X}", n.as_i64().unwrap_or(0))
            }
            ('x', Value::String(x)) => hex::encode(x.as_bytes()),
            ('f', Value::Number(n)) => {
                format!("{:.*}", precision.unwrap_or(6), n.as_f64().unwrap_or(0.0))
            }
            (verb, other) => format!("%!{verb}({}={})", type_name(other), print_value(other)),
        };
        let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else {
            let fill = if zero && arg.is_number() { "0" } else { " " };
            out.push_str(&fill.repeat(pad));
            out.push_str(&text);
        }
    }
    let extra: Vec<&Value> = args.collect();
    if !extra.is_empty() {
        let items: Vec<String> = extra
            .iter()
            .map(|v| format!("{}={}", type_name(v), print_value(v)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", items.join(", ")));
    }
    out
}

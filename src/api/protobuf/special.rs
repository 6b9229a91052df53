//! Messages whose JSON form is a single value: times, durations, quantities,
//! int-or-string and embedded raw JSON.

use serde_json::Value;

use super::wire::{Reader, WireValue};
use super::ProtobufError;

/// Reads the varint fields of a small message into `out[number - 1]`;
/// string fields (wire type 2) are returned by number.
fn fields<'a>(bytes: &'a [u8], ints: &mut [i64]) -> Result<Vec<(u32, &'a [u8])>, ProtobufError> {
    let mut strings = Vec::new();
    let mut r = Reader::new(bytes);
    loop {
        match r.next_field() {
            Ok(None) => return Ok(strings),
            Ok(Some((n, WireValue::Varint(v)))) => {
                if let Some(slot) = ints.get_mut(n as usize - 1) {
                    *slot = v as i64;
                }
            }
            Ok(Some((n, WireValue::Bytes(b)))) => strings.push((n, b)),
            Ok(Some(_)) => {}
            Err((_, reason)) => return Err(ProtobufError::malformed("", reason)),
        }
    }
}

/// `Time` {1: seconds, 2: nanos} as RFC3339 (seconds precision: Go's
/// `metav1.Time` drops nanoseconds) or, for `MicroTime`, with six fractional
/// digits. The zero time (an empty message) is left out, as the JSON API
/// would carry `null`.
pub(super) fn time(bytes: &[u8], micro: bool) -> Result<Option<Value>, ProtobufError> {
    let mut ints = [0i64; 2];
    fields(bytes, &mut ints)?;
    let [seconds, nanos] = ints;
    let nanos = if micro { nanos as i32 } else { 0 };
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| ProtobufError::malformed("", format!("nanos {nanos} out of range")))?;
    let t = chrono::DateTime::from_timestamp(seconds, nanos)
        .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| ProtobufError::malformed("", format!("time {seconds}s out of range")))?;
    let text = if micro {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    Ok(Some(Value::String(text)))
}

/// `Duration` {1: nanoseconds} as Go prints a `time.Duration` ("1h2m3.5s").
pub(super) fn duration(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut ints = [0i64; 1];
    fields(bytes, &mut ints)?;
    Ok(Value::String(go_duration(ints[0])))
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if d < 0 {
        out.push('-');
    }
    let u = d.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if u < SECOND {
        let (div, unit) = match u {
            0..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        out += &fraction(u, div);
        out += unit;
        return out;
    }
    let hours = u / (3600 * SECOND);
    let minutes = u % (3600 * SECOND) / (60 * SECOND);
    let rest = u % (60 * SECOND);
    if hours > 0 {
        out += &format!("{hours}h");
    }
    if hours > 0 || minutes > 0 {
        out += &format!("{minutes}m");
    }
    out += &fraction(rest, SECOND);
    out.push('s');
    out
}

/// `v / div` with the remainder as trimmed decimal digits ("1.5", "3").
fn fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `IntOrString` {1: type, 2: intVal, 3: strVal}: a JSON number for type 0,
/// a string for type 1.
pub(super) fn int_or_string(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut ints = [0i64; 2];
    let strings = fields(bytes, &mut ints)?;
    match ints[0] {
        0 => Ok(Value::from(ints[1] as i32)),
        1 => Ok(Value::String(last_string(&strings, 3))),
        t => Err(ProtobufError::malformed(
            "",
            format!("IntOrString type {t} is neither 0 (int) nor 1 (string)"),
        )),
    }
}

fn last_string(strings: &[(u32, &[u8])], number: u32) -> String {
    strings
        .iter()
        .rev()
        .find(|(n, _)| *n == number)
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// `Quantity` {1: string}; a zero Quantity reads "0", as Go marshals it.
pub(super) fn quantity(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let s = last_string(&fields(bytes, &mut [])?, 1);
    Ok(Value::String(if s.is_empty() { "0".into() } else { s }))
}

/// `RawExtension` / `FieldsV1` {1: raw}: the raw bytes are JSON, or a nested
/// protobuf object with its own `k8s\0` envelope. Empty raw is left out.
pub(super) fn raw_json(bytes: &[u8], depth: usize) -> Result<Option<Value>, ProtobufError> {
    let strings = fields(bytes, &mut [])?;
    let Some((_, raw)) = strings.iter().rev().find(|(n, _)| *n == 1) else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.starts_with(super::MAGIC) {
        return super::decode_at_depth(raw, depth + 1).map(Some);
    }
    serde_json::from_slice(raw)
        .map(Some)
        .map_err(|e| ProtobufError::malformed("", format!("embedded object is not JSON: {e}")))
}

//! A watch event made from the stored bytes, without decoding them: for a
//! watch that selects nothing and wants objects as stored, the stored JSON
//! is the object but for its resourceVersion, which is spliced into its
//! metadata. Decoding every event into a tree and encoding it again was a
//! good part of the server's work when pods change by the thousand
//! (upstream's watch cache likewise serializes an event once).

use bytes::Bytes;

/// `{"type":KIND,"object":RAW}` with `metadata.resourceVersion` set to
/// `rev`, as one line; None when `raw` is not an object with a metadata
/// object of its own (the caller decodes it then).
pub fn event_line(kind: &str, raw: &[u8], rev: i64) -> Option<Bytes> {
    let at = metadata_body(raw)?;
    // The bytes are the store's own compact encoding; anything else (cut
    // short, followed by more, or on several lines, which would break the
    // one-event-per-line stream) is left to the decoder.
    if !one_line_object(raw) {
        return None;
    }
    // A stored object never carries its revision (it is the store's); one
    // that somehow does goes the slow way rather than get two.
    if raw.windows(RV.len()).any(|w| w == RV) {
        return None;
    }
    let empty = raw[at..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let rev = rev.to_string();
    let mut line = Vec::with_capacity(raw.len() + kind.len() + rev.len() + 64);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&raw[..at]);
    line.extend_from_slice(RV);
    line.extend_from_slice(b":\"");
    line.extend_from_slice(rev.as_bytes());
    line.push(b'"');
    if !empty {
        line.push(b',');
    }
    line.extend_from_slice(&raw[at..]);
    line.extend_from_slice(b"}\n");
    Some(Bytes::from(line))
}

const RV: &[u8] = b"\"resourceVersion\"";

/// Where the contents of the top-level `metadata` object begin (just
/// after its `{`).
fn metadata_body(json: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let end = string_end(json, i + 1)?;
                if depth == 1 && expect_key {
                    let key = &json[i + 1..end];
                    let mut j = skip_ws(json, end + 1);
                    if json.get(j) != Some(&b':') {
                        return None;
                    }
                    j = skip_ws(json, j + 1);
                    if key == b"metadata" {
                        return (json.get(j) == Some(&b'{')).then_some(j + 1);
                    }
                    expect_key = false;
                    i = j;
                    continue;
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1 && json[i] == b'{';
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `json` is one object, balanced, with nothing after it and no
/// line break outside its strings (inside them JSON escapes them).
fn one_line_object(json: &[u8]) -> bool {
    let start = skip_ws(json, 0);
    if json.get(start) != Some(&b'{') {
        return false;
    }
    let mut depth = 0usize;
    let mut i = start;
    while i < json.len() {
        match json[i] {
            b'"' => match string_end(json, i + 1) {
                Some(end) => i = end,
                None => return false,
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' => match depth.checked_sub(1) {
                Some(0) => {
                    let rest = &json[i + 1..];
                    return rest.iter().all(|b| *b == b' ' || *b == b'\t');
                }
                Some(d) => depth = d,
                None => return false,
            },
            b'\n' | b'\r' => return false,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The index of the quote that ends the string whose contents start at `i`.
fn string_end(json: &[u8], mut i: usize) -> Option<usize> {
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// What the watch sends when it decodes: the event line, parsed.
    fn decoded(kind: &str, obj: &Value, rev: i64) -> Value {
        let mut obj = obj.clone();
        obj["metadata"]["resourceVersion"] = json!(rev.to_string());
        json!({"type": kind, "object": obj})
    }

    fn spliced(kind: &str, obj: &Value, rev: i64) -> Option<Value> {
        let raw = serde_json::to_vec(obj).unwrap();
        let line = event_line(kind, &raw, rev)?;
        assert!(line.ends_with(b"}\n"));
        Some(serde_json::from_slice(&line).unwrap())
    }

    #[test]
    fn the_line_is_the_decoded_event() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "d"}}),
            // Metadata not first, strings holding what a scanner trips on,
            // nested objects and arrays before it with their own metadata.
            json!({"kind": "ConfigMap", "data": {"x": "{\"metadata\": {}}, \\\"", "metadata": "no"},
                   "list": [{"metadata": {"a": 1}}, "]", "["], "metadata": {"name": "b", "labels": {"k": "}"}}}),
            json!({"metadata": {}}),
            json!({"spec": {}, "metadata": {"annotations": {"last": "{\"resourceVersion\":\"1\"}"}}}),
        ];
        for (i, obj) in objects.iter().enumerate() {
            assert_eq!(
                spliced("MODIFIED", obj, 42 + i as i64),
                Some(decoded("MODIFIED", obj, 42 + i as i64)),
                "{obj}"
            );
        }
        // Spaces as another encoder might write them.
        let raw = br#"{ "kind" : "Pod" , "metadata" : { } }"#;
        let line = event_line("ADDED", raw, 7).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["object"]["metadata"], json!({"resourceVersion": "7"}));
    }

    #[test]
    fn what_it_cannot_splice_is_left_to_the_decoder() {
        for obj in [
            json!({"kind": "Pod"}),
            json!({"metadata": "a string"}),
            json!({"metadata": {"resourceVersion": "3"}}),
        ] {
            assert_eq!(spliced("ADDED", &obj, 1), None, "{obj}");
        }
        assert_eq!(event_line("ADDED", b"[1, 2]", 1), None);
        for raw in [
            &b"{\"metadata\": {"[..],
            b"{\"metadata",
            b"{\"metadata\": {}} {\"x\": 1}",
            b"{\"metadata\": {},\n\"x\": 1}",
            b"{\"metadata\": {}}}",
            b"{\"metadata\": {\"a\": \"\\",
        ] {
            let text = String::from_utf8_lossy(raw);
            assert_eq!(event_line("ADDED", raw, 1), None, "{text}");
        }
    }
}

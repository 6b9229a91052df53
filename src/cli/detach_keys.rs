//! Docker's detach keys (`--detach-keys`, default `ctrl-p,ctrl-q`): a key
//! sequence typed on an attached terminal that leaves the container running
//! and ends the CLI. Keys that begin the sequence are held back until it is
//! clear whether the whole sequence follows; if not, they go to the
//! container after all.

/// The default, as docker's.
const DEFAULT: &str = "ctrl-p,ctrl-q";

#[derive(Debug, thiserror::Error)]
#[error("invalid detach keys {0:?}: expected a comma-separated list of single characters or ctrl-KEY, KEY one of a-z @ [ \\ ] ^ _")]
pub struct DetachKeysError(String);

/// A parsed detach sequence (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl DetachKeys {
    /// `None`: the default sequence.
    pub fn parse(spec: Option<&str>) -> Result<DetachKeys, DetachKeysError> {
        let spec = spec.unwrap_or(DEFAULT);
        let bad = || DetachKeysError(spec.to_string());
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let code = match key.strip_prefix("ctrl-") {
                Some(c) => match c.as_bytes() {
                    [b @ b'a'..=b'z'] => b - b'a' + 1,
                    [b'@'] => 0,
                    [b'['] => 27,
                    [b'\\'] => 28,
                    [b']'] => 29,
                    [b'^'] => 30,
                    [b'_'] => 31,
                    _ => return Err(bad()),
                },
                None => match key.as_bytes() {
                    [b] if b.is_ascii() && !b.is_ascii_control() => *b,
                    _ => return Err(bad()),
                },
            };
            keys.push(code);
        }
        Ok(DetachKeys(keys))
    }
}

/// Watches a terminal's input for the detach sequence.
pub struct Escape {
    keys: Vec<u8>,
    /// How much of the sequence the last bytes matched (held back).
    matched: usize,
}

impl Escape {
    pub fn new(keys: DetachKeys) -> Escape {
        Escape {
            keys: keys.0,
            matched: 0,
        }
    }

    /// The bytes to pass on for `input`, and whether the sequence is
    /// complete (what follows it in `input` is dropped, as the CLI leaves).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held goes on, and this
            // byte may begin the sequence anew.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        assert_eq!(DetachKeys::parse(None).unwrap().0, [16, 17]);
        assert_eq!(
            DetachKeys::parse(Some("ctrl-a,x,ctrl-\\,ctrl-@"))
                .unwrap()
                .0,
            [1, b'x', 28, 0]
        );
        for bad in ["", "ctrl-", "ctrl-1", "xy", "ctrl-p,,q", "ctrl-P"] {
            assert!(DetachKeys::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn detaches_on_the_sequence_and_passes_the_rest() {
        let mut e = Escape::new(DetachKeys::parse(None).unwrap());
        assert_eq!(e.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        // Split across reads, the first key held back.
        assert_eq!(e.feed(&[b'a', 16]), (b"a".to_vec(), false));
        assert_eq!(e.feed(&[17, b'z']), (Vec::new(), true));
    }

    #[test]
    fn a_broken_sequence_is_passed_on() {
        let mut e = Escape::new(DetachKeys::parse(None).unwrap());
        assert_eq!(e.feed(&[16, b'x']), (vec![16, b'x'], false));
        // ctrl-p ctrl-p ctrl-q: the first ctrl-p goes on, the rest detaches.
        assert_eq!(e.feed(&[16, 16, 17]), (vec![16], true));
        let mut one = Escape::new(DetachKeys::parse(Some("q")).unwrap());
        assert_eq!(one.feed(b"abq"), (b"ab".to_vec(), true));
    }
}

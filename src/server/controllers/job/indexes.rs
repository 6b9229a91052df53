//! Completion indexes as the Job API writes them: `status.completedIndexes`
//! is a sorted list of intervals, `1,3-5,7`.

use std::collections::BTreeSet;

/// Parse `1,3-5,7`; what does not parse is left out (the API validates the
/// field, so only a hand-written status could hold garbage).
pub fn parse(s: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    // Bounded by the Job's completions (validated ≤ 10^5
                    // for Indexed Jobs); a larger range is not ours.
                    if a <= b && b - a <= 100_000 {
                        out.extend(a..=b);
                    }
                }
            }
            None => {
                if let Ok(n) = part.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip() {
        let s = parse("0,2-4,7");
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 4, 7]);
        assert_eq!(format(&s), "0,2-4,7");
        assert_eq!(format(&parse("")), "");
        assert_eq!(format(&parse("5,1,2,3")), "1-3,5");
        assert!(parse("x,3-1").is_empty());
    }
}

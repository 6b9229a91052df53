//! `resource.Quantity` strings ("100m", "1.5Gi", "2e3"): syntax and an
//! approximate numeric value for comparisons (requests ≤ limits, ≥ 0).

/// apimachinery's error for a string that is no quantity at all.
pub const QUANTITY_REGEX_ERR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// apimachinery's error for a number with an unknown suffix.
pub const QUANTITY_SUFFIX_ERR: &str = "unable to parse quantity's suffix";

/// Parse a quantity into its value (in base units), or the error the
/// apiserver's decoder gives for it.
pub fn parse(s: &str) -> Result<f64, &'static str> {
    if s.is_empty() {
        return Err(QUANTITY_REGEX_ERR);
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, suffix) = rest.split_at(num_end);
    if num.is_empty() || !num.bytes().any(|c| c.is_ascii_digit()) || num.matches('.').count() > 1 {
        return Err(QUANTITY_REGEX_ERR);
    }
    let valid_suffix_chars = suffix.bytes().enumerate().all(|(i, c)| {
        b"eEinumkKMGTP".contains(&c) || c.is_ascii_digit() || (i > 0 && (c == b'-' || c == b'+'))
    });
    if !valid_suffix_chars {
        return Err(QUANTITY_REGEX_ERR);
    }
    let value: f64 = num.parse().map_err(|_| QUANTITY_REGEX_ERR)?;
    let factor = suffix_factor(suffix).ok_or(QUANTITY_SUFFIX_ERR)?;
    let v = value * factor;
    Ok(if negative { -v } else { v })
}

fn suffix_factor(suffix: &str) -> Option<f64> {
    let bin = |p: i32| Some(1024f64.powi(p));
    let dec = |p: i32| Some(10f64.powi(p));
    match suffix {
        "" => dec(0),
        "Ki" => bin(1),
        "Mi" => bin(2),
        "Gi" => bin(3),
        "Ti" => bin(4),
        "Pi" => bin(5),
        "Ei" => bin(6),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let e: i32 = exp.parse().ok()?;
            dec(e)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            ("100m", 0.1),
            ("1.5Gi", 1.5 * 1024.0 * 1024.0 * 1024.0),
            ("128Mi", 128.0 * 1024.0 * 1024.0),
            ("2k", 2000.0),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("-1", -1.0),
            ("+5", 5.0),
            (".5", 0.5),
            ("0", 0.0),
        ];
        for (s, want) in cases {
            let got = parse(s).unwrap_or(f64::NAN);
            assert!((got - want).abs() <= want.abs() * 1e-12, "{s}: {got}");
        }
        for bad in ["", "abc", "1x", "--1", "1..2", ".", "1 Gi", "Gi", "1KiB"] {
            assert_eq!(parse(bad), Err(QUANTITY_REGEX_ERR), "{bad:?}");
        }
        for bad in ["1kk", "1e", "1e+", "1Kii"] {
            assert_eq!(parse(bad), Err(QUANTITY_SUFFIX_ERR), "{bad:?}");
        }
    }
}

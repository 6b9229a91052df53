//! `resource.Quantity` strings ("100m", "1.5Gi", "2e3"): syntax and an
//! approximate numeric value for comparisons (requests ≤ limits, ≥ 0).

/// apimachinery's error for a string that is no quantity at all.
pub const QUANTITY_REGEX_ERR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// apimachinery's error for a number with an unknown suffix.
pub const QUANTITY_SUFFIX_ERR: &str = "unable to parse quantity's suffix";

/// A quantity taken apart: sign, the decimal number, and the scale its
/// suffix gives (a power of 2 or of 10).
struct Parts<'a> {
    negative: bool,
    number: &'a str,
    scale: Scale,
}

#[derive(Clone, Copy)]
enum Scale {
    Binary(u32),
    Decimal(i32),
}

/// The syntax of a quantity, with the error the apiserver's decoder gives
/// for a string that is not one.
fn parts(s: &str) -> Result<Parts<'_>, &'static str> {
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
    let (number, suffix) = rest.split_at(num_end);
    if number.is_empty()
        || !number.bytes().any(|c| c.is_ascii_digit())
        || number.matches('.').count() > 1
    {
        return Err(QUANTITY_REGEX_ERR);
    }
    let valid_suffix_chars = suffix.bytes().enumerate().all(|(i, c)| {
        b"eEinumkKMGTP".contains(&c) || c.is_ascii_digit() || (i > 0 && (c == b'-' || c == b'+'))
    });
    if !valid_suffix_chars {
        return Err(QUANTITY_REGEX_ERR);
    }
    let scale = suffix_scale(suffix).ok_or(QUANTITY_SUFFIX_ERR)?;
    Ok(Parts {
        negative,
        number,
        scale,
    })
}

/// Parse a quantity into its value (in base units), or the error the
/// apiserver's decoder gives for it. Approximate (a float): for the checks
/// that compare magnitudes (requests ≤ limits, ≥ 0); [`nanos`] is exact.
pub fn parse(s: &str) -> Result<f64, &'static str> {
    let p = parts(s)?;
    let value: f64 = p.number.parse().map_err(|_| QUANTITY_REGEX_ERR)?;
    let v = value
        * match p.scale {
            Scale::Binary(b) => 2f64.powi(b as i32),
            Scale::Decimal(d) => 10f64.powi(d),
        };
    Ok(if p.negative { -v } else { v })
}

/// A quantity's exact value in billionths of its unit, rounded up below a
/// billionth as upstream rounds; None when it is not a quantity or is too
/// large to hold. For decisions that compare for equality (a pod's QoS
/// class: are its requests its limits?), where "1" and "1000m" must match.
pub fn nanos(s: &str) -> Option<i128> {
    let p = parts(s).ok()?;
    let (int, frac) = p.number.split_once('.').unwrap_or((p.number, ""));
    // Digits beyond what an i128 of nanos can hold are not quantities
    // anyone writes; refuse them rather than overflow.
    if int.len() + frac.len() > 30 {
        return None;
    }
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    // value = digits / 10^frac.len() * 2^bin * 10^dec, in nanos (10^9).
    let (bin, dec) = match p.scale {
        Scale::Binary(b) => (b, 0),
        Scale::Decimal(d) if (-30..=30).contains(&d) => (0, d),
        Scale::Decimal(_) => return None,
    };
    let scale = dec + 9 - frac.len() as i32;
    let mut value = digits.checked_mul(1i128.checked_shl(bin)?)?;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(scale as u32)?)?;
    } else {
        let div = 10i128.checked_pow((-scale) as u32)?;
        value = (value + div - 1) / div;
    }
    Some(if p.negative { -value } else { value })
}

/// A value in billionths as the apiserver prints a computed quantity
/// (`Quantity.String()` of a sum): the largest suffix that keeps it whole,
/// binary ones (`Ki`…`Ei`) when `binary`, else decimal (`k`…`E`), and
/// `m`/`u`/`n` below one.
pub fn format_nanos(n: i128, binary: bool) -> String {
    const BILLION: i128 = 1_000_000_000;
    if n == 0 {
        return "0".to_string();
    }
    let sign = if n < 0 { "-" } else { "" };
    let n = n.abs();
    if n % BILLION != 0 {
        for (div, suffix) in [(1_000_000, "m"), (1_000, "u"), (1, "n")] {
            if n % div == 0 {
                return format!("{sign}{}{suffix}", n / div);
            }
        }
    }
    let whole = n / BILLION;
    let (base, suffixes): (i128, [&str; 6]) = if binary {
        (1024, ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
    } else {
        (1000, ["k", "M", "G", "T", "P", "E"])
    };
    let (mut v, mut suffix) = (whole, "");
    for s in suffixes {
        if v % base != 0 {
            break;
        }
        v /= base;
        suffix = s;
    }
    format!("{sign}{v}{suffix}")
}

/// True when a quantity is written with a binary suffix, so sums with it
/// print in the same system.
pub fn is_binary(s: &str) -> bool {
    matches!(parts(s).map(|p| p.scale), Ok(Scale::Binary(_)))
}

fn suffix_scale(suffix: &str) -> Option<Scale> {
    let bin = |p: u32| Some(Scale::Binary(p * 10));
    let dec = |p: i32| Some(Scale::Decimal(p));
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
    fn computed_quantities_print_as_upstream() {
        let q = |s: &str| nanos(s).unwrap();
        assert_eq!(format_nanos(q("500m") + q("500m"), false), "1");
        assert_eq!(format_nanos(q("250m") + q("1"), false), "1250m");
        assert_eq!(format_nanos(q("1Gi") + q("512Mi"), true), "1536Mi");
        assert_eq!(format_nanos(q("3000"), false), "3k");
        assert_eq!(format_nanos(q("1500"), false), "1500");
        assert_eq!(format_nanos(0, true), "0");
        assert!(is_binary("2Gi") && !is_binary("2G") && !is_binary("2"));
    }

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

    #[test]
    fn exact_values_in_nanos() {
        let n = nanos;
        assert_eq!(n("1"), Some(1_000_000_000));
        assert_eq!(n("1000m"), n("1"));
        assert_eq!(n("0.5"), n("500m"));
        assert_eq!(n("1Gi"), Some(1_073_741_824_000_000_000));
        assert_eq!(n("1024Mi"), n("1Gi"));
        assert_eq!(n("1k"), n("1e3"));
        assert_eq!(n("1E3"), n("1000"));
        assert_eq!(n("1M"), Some(1_000_000_000_000_000));
        assert_eq!(n("100n"), Some(100));
        assert_eq!(n("1u"), Some(1000));
        assert_eq!(n("-2"), Some(-2_000_000_000));
        assert_eq!(n("+2"), n("2"));
        assert_eq!(n(".5"), n("500m"));
        assert_eq!(n("1e-10"), Some(1), "below a nano rounds up");
        assert_eq!(n("0"), Some(0));
        assert_eq!(n("1e+3"), n("1k"));
        for bad in ["", "m", "1x", "1.2.3", "--1", "1e", "Gi", "1 Gi"] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }
}

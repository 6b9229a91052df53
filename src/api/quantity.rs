//! Resource quantities (`500m`, `1Gi`, `2e3`) as numbers, for the decisions
//! that compare them (a pod's QoS class): upstream's `resource.Quantity`
//! grammar, a signed decimal number with an optional binary (`Ki`…`Ei`),
//! decimal (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or exponent
//! (`e3`, `E-2`) suffix. Values are kept in nano units, as upstream rounds
//! them (up, to the nano) once they are that precise.

/// A quantity in billionths of its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub i128);

/// Parse a quantity; None when it is not one (validation says why).
pub fn parse(s: &str) -> Option<Nanos> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // Digits beyond what an i128 of nanos can hold are not quantities
    // anyone writes; refuse them rather than overflow.
    if int.len() + frac.len() > 30 {
        return None;
    }
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    // value = digits / 10^frac.len() * 2^bin * 10^dec, in nanos (10^9).
    let (bin, dec): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        e => {
            let exp = e.strip_prefix('e').or_else(|| e.strip_prefix('E'))?;
            let n: i32 = exp.parse().ok()?;
            if !(-30..=30).contains(&n) {
                return None;
            }
            (0, n)
        }
    };
    let scale = dec + 9 - frac.len() as i32;
    let mut value = digits.checked_mul(1i128.checked_shl(bin)?)?;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(scale as u32)?)?;
    } else {
        // Below a nano: rounded up, as upstream rounds.
        let div = 10i128.checked_pow((-scale) as u32)?;
        value = (value + div - 1) / div;
    }
    Some(Nanos(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_upstream_accepts() {
        let n = |s: &str| parse(s).map(|n| n.0);
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

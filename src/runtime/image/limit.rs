//! How far a layer may expand when unpacked.
//!
//! A compressed layer is a promise about nothing: 1.8 MB of gzip unpacks to
//! 400 MB of zeros, zstd goes much further, and GNU sparse entries describe
//! gigabytes in a few headers. The store refuses a layer whose uncompressed
//! stream, or the data of the files it describes, go beyond
//!
//! ```text
//! min(max_size, max(FLOOR, max_ratio × compressed size))
//! ```
//!
//! Holes of sparse entries take no space (they are written sparse) and do
//! not count there; reading through them still takes time, so a sparse
//! entry's apparent size is bounded by `max_size` alone.
//!
//! Why these numbers: real layers compress 2–5×, text-heavy ones rarely
//! beyond 10–20×; 100× leaves a wide margin while a bomb (gzip reaches about
//! 1000× on zeros) is stopped after a bounded amount of work. Small layers
//! may legitimately hold a zero-filled file worth more than 100×, hence the
//! floor of 256 MiB under which the ratio is not applied. The absolute cap of
//! 32 GiB is above the largest layers of common images (CUDA/ML images ship
//! layers of a few GiB) and below what an edge box could ever hold. Both
//! knobs are flags of `skiff pull` (`--max-layer-size`, `--max-layer-ratio`,
//! 0 turning the ratio off).

use std::fmt;

/// Below this, the ratio is not applied.
pub const FLOOR: u64 = 256 << 20;
/// Default absolute cap.
pub const DEFAULT_MAX_SIZE: u64 = 32 << 30;
/// Default cap on uncompressed / compressed.
pub const DEFAULT_MAX_RATIO: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLimit {
    /// Most bytes any layer may expand to.
    pub max_size: u64,
    /// Most a layer may expand relative to its compressed size (0: no ratio
    /// limit).
    pub max_ratio: u64,
}

impl Default for LayerLimit {
    fn default() -> Self {
        LayerLimit {
            max_size: DEFAULT_MAX_SIZE,
            max_ratio: DEFAULT_MAX_RATIO,
        }
    }
}

impl LayerLimit {
    /// The limit for a layer whose blob is `compressed` bytes.
    pub fn for_blob(&self, compressed: u64) -> u64 {
        if self.max_ratio == 0 {
            return self.max_size;
        }
        let by_ratio = compressed.saturating_mul(self.max_ratio).max(FLOOR);
        by_ratio.min(self.max_size)
    }

    /// What produced `limit` for a blob of `compressed` bytes, for errors.
    pub fn explain(&self, compressed: u64) -> String {
        let limit = self.for_blob(compressed);
        if self.max_ratio != 0 && limit < self.max_size {
            format!(
                "{} ({}× its compressed size of {}, at least {}); if the image is \
                 genuine, pull it with a larger --max-layer-ratio (0 turns the ratio off)",
                Bytes(limit),
                self.max_ratio,
                Bytes(compressed),
                Bytes(FLOOR)
            )
        } else {
            format!(
                "{} (--max-layer-size); if the image is genuine, pull it with a larger \
                 --max-layer-size",
                Bytes(limit)
            )
        }
    }
}

/// Parse a size such as `4096`, `512M`, `8GiB`, `1g` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 512M, 8GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A byte count with its binary-unit form, e.g. `268435456 bytes (256 MiB)`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut unit = None;
        for u in units {
            if v < 1024.0 {
                break;
            }
            v /= 1024.0;
            unit = Some(u);
        }
        match unit {
            Some(u) => write!(f, "{} bytes ({v:.1} {u})", self.0),
            None => write!(f, "{} bytes", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_ratio_over_a_floor_under_a_cap() {
        let l = LayerLimit::default();
        assert_eq!(l.for_blob(1_800_000), FLOOR);
        assert_eq!(l.for_blob(10 << 20), 1000 << 20);
        assert_eq!(l.for_blob(1 << 30), DEFAULT_MAX_SIZE);
        let off = LayerLimit { max_ratio: 0, ..l };
        assert_eq!(off.for_blob(1), DEFAULT_MAX_SIZE);
        assert!(l.explain(1_800_000).contains("--max-layer-ratio"));
        assert!(off.explain(1).contains("--max-layer-size"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("9999999999T").is_err());
    }
}

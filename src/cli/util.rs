//! Small helpers several commands share (kept here so command files do not
//! import one another).

use anyhow::Context;

use crate::runtime::engine::Engine;
use crate::runtime::image::Store;

/// The engine's image store, the error naming where it is.
pub fn image_store(engine: &Engine) -> anyhow::Result<&Store> {
    engine
        .images()
        .with_context(|| format!("opening the image store under {}", engine.root().display()))
}

/// A tokio runtime for the commands that talk to registries.
pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::runtime::image::ensure::tokio_runtime().context("starting the async runtime")
}

/// Docker prints sizes in decimal units with three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        let s = format!("{value:.3}");
        let s = if value >= 100.0 {
            format!("{value:.0}")
        } else if value >= 10.0 {
            format!("{value:.1}")
        } else {
            format!("{:.2}", s.parse::<f64>().unwrap_or(value))
        };
        // Trailing zeros of a fraction only: 100kB must not become 1kB.
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            &s
        };
        format!("{s}{}", UNITS[unit])
    }
}

/// A listing in docker's style: a header row, columns padded with spaces,
/// no borders.
pub fn listing<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    table
}

/// The listing's text as docker prints it: comfy-table's one-space margin
/// and trailing padding removed, one line each.
pub fn listing_text(table: &comfy_table::Table) -> String {
    let mut out = String::new();
    for line in table.to_string().lines() {
        out.push_str(line.trim_end().strip_prefix(' ').unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Docker's prompt on stderr; anything but y/yes (including end of input)
/// declines.
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr();
    write!(err, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer")?;
    if line.is_empty() {
        // End of input: finish the prompt's line.
        eprintln!();
    }
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Bytes of the regular files under `path` (symlinks not followed).
pub fn tree_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(123_400_000), "123MB");
        assert_eq!(human_size(1_000_000_000), "1GB");
        assert_eq!(human_size(100_000), "100kB");
        assert_eq!(human_size(200_400_000), "200MB");
        assert_eq!(human_size(10_000_000), "10MB");
    }
}

//! The release binary's code layout: the functions a server runs while it
//! starts and answers its first requests (`link/server-start.order`, made by
//! `scripts/gen-link-order.py` from a callgrind profile) are placed together
//! at the front of the code, in an output section of their own, by a linker
//! script fragment (`INSERT BEFORE .text`, so the default script still lays
//! out everything else).
//!
//! Why: the kernel maps a binary's code in 64 KiB windows around each page
//! fault (fault-around), and those pages count in the process's RSS. skiff
//! is one binary for the CLI, the engine, the shim and the server, so a
//! server's start-up code sat among engine and CLI code it never runs: it
//! ran 5.2 MiB of code pages and had 11 MiB resident. Packed together the
//! same start-up leaves ~3 MiB less resident, and other code paths (the
//! engine's) lose the server code that sat among them.
//!
//! Release builds only: layout changes no behaviour, and a debug build's
//! far more sections make matching ~3,000 wildcard patterns slow. The
//! fragment is given as `-T<file>`, which the C compiler driver passes on
//! and lld (rustc's default linker here) and GNU ld take; gold and mold do
//! not take `INSERT`, so with those (named in the rustflags) or with
//! `SKIFF_LINK_ORDER=0` the default layout is kept. Patterns that match
//! nothing (after code moved) cost nothing; a malformed line fails the
//! build with its number.

use std::path::PathBuf;

const ORDER: &str = "link/server-start.order";

pub fn run() {
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-env-changed=SKIFF_LINK_ORDER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let rustflags = env("CARGO_ENCODED_RUSTFLAGS");
    if env("PROFILE") != "release"
        || env("CARGO_CFG_TARGET_OS") != "linux"
        || env("SKIFF_LINK_ORDER") == "0"
        || ["fuse-ld=gold", "fuse-ld=mold", "linker=mold", "linker=gold"]
            .iter()
            .any(|l| rustflags.contains(l))
    {
        return;
    }
    let text = std::fs::read_to_string(ORDER).unwrap_or_else(|e| panic!("{ORDER}: {e}"));
    let script = linker_script(&text).unwrap_or_else(|e| panic!("{ORDER}: {e}"));
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_else(|| panic!("no OUT_DIR")));
    let path = dir.join("server-start.ld");
    std::fs::write(&path, script).unwrap_or_else(|e| panic!("OUT_DIR: {e}"));
    println!("cargo:rustc-link-arg-bins=-T{}", path.display());
}

/// The linker script fragment for the patterns in `text` (one per line;
/// `#` starts a comment line).
fn linker_script(text: &str) -> Result<String, String> {
    let mut out = String::from("SECTIONS\n{\n  .text.server_start :\n  {\n");
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Symbol names as nm prints them, and `*`: nothing the script's
        // syntax would read otherwise.
        if !line
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.$*".contains(c))
        {
            return Err(format!("line {}: not a symbol pattern: {line:?}", n + 1));
        }
        // LLVM puts the functions it deems cold (called only on paths it
        // thinks rare, such as clap's builders) under `.text.unlikely.`.
        out.push_str(&format!("    *(.text.{line} .text.unlikely.{line})\n"));
    }
    out.push_str("  }\n}\nINSERT BEFORE .text;\n");
    Ok(out)
}

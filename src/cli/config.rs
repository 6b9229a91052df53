//! Flags from a YAML file, as k3s does: every key of `/etc/skiff/config.yaml`
//! is a long flag of the subcommand (`https-listen-port: 7443`,
//! `tls-san: [a, b]`, `debug: true`). Flags given on the command line win.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;

pub const DEFAULT_CONFIG: &str = "/etc/skiff/config.yaml";

/// Global flags written as `--flag VALUE` (two words).
const GLOBAL_WITH_VALUE: &[&str] = &["--root"];

/// Subcommands that read the config file.
const CONFIGURABLE: &[&str] = &["server", "agent"];

/// Config keys and the flags they become.
type KeysToFlags = &'static [(&'static str, &'static str)];

/// Subcommands that take a few of the server's keys, as the flag each
/// becomes (so that `skiff snapshot` and `skiff kubeconfig` find what a
/// server configured there uses); `true`: the flags go after a further
/// subcommand word (`snapshot save`).
const PARTIAL: &[(&str, bool, KeysToFlags)] = &[
    ("snapshot", true, &[("data-dir", "--data-dir")]),
    ("kubeconfig", false, &[("write-kubeconfig", "--kubeconfig")]),
];

/// The config file named by `--config FILE` / `--config=FILE` (removed from
/// `args`), else `$SKIFF_CONFIG_FILE`, else the default when it exists.
fn take_config_path(args: &mut Vec<OsString>) -> anyhow::Result<Option<(PathBuf, bool)>> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().to_string();
        if a == "--config" || a == "-c" {
            let Some(p) = args.get(i + 1).cloned() else {
                bail!("--config needs a file name");
            };
            args.drain(i..=i + 1);
            return Ok(Some((PathBuf::from(p), true)));
        }
        if let Some(p) = a.strip_prefix("--config=") {
            let p = PathBuf::from(p);
            args.remove(i);
            return Ok(Some((p, true)));
        }
        i += 1;
    }
    Ok(default_config_path())
}

/// `$SKIFF_CONFIG_FILE`, else the default file when it exists.
fn default_config_path() -> Option<(PathBuf, bool)> {
    if let Some(p) = std::env::var_os("SKIFF_CONFIG_FILE") {
        return Some((PathBuf::from(p), true));
    }
    let default = Path::new(DEFAULT_CONFIG);
    default.exists().then(|| (default.to_path_buf(), false))
}

/// A config document's map of flag names to values.
fn yaml_map(text: &str, source: &Path) -> anyhow::Result<serde_json::Map<String, Value>> {
    let doc: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_saphyr::from_str(text)
            .with_context(|| format!("{} is not valid YAML", source.display()))?
    };
    match doc {
        Value::Null => Ok(serde_json::Map::new()),
        Value::Object(m) => Ok(m),
        _ => bail!("{} must be a map of flag names to values", source.display()),
    }
}

/// Turn a config document into `--flag=value` arguments.
pub fn flags_from_yaml(text: &str, source: &Path) -> anyhow::Result<Vec<OsString>> {
    let map = yaml_map(text, source)?;
    let mut out = Vec::new();
    for (key, value) in map {
        if key.starts_with('-') || key.is_empty() {
            bail!(
                "{}: key {key:?} must be a flag name without dashes (e.g. https-listen-port)",
                source.display()
            );
        }
        let scalar = |v: &Value| -> anyhow::Result<String> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => bail!(
                    "{}: {key} must be a string, number or boolean",
                    source.display()
                ),
            }
        };
        match &value {
            Value::Bool(true) => out.push(OsString::from(format!("--{key}"))),
            Value::Bool(false) | Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    out.push(OsString::from(format!("--{key}={}", scalar(item)?)));
                }
            }
            v => out.push(OsString::from(format!("--{key}={}", scalar(v)?))),
        }
    }
    Ok(out)
}

/// The process arguments with the config file's flags put right after the
/// subcommand, so that flags on the command line (later) override them.
pub fn args_with_config(mut args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    // The subcommand is the first word that is neither a flag nor the value
    // of a global flag that takes one.
    let mut sub_pos = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if GLOBAL_WITH_VALUE.contains(&a.as_ref()) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            sub_pos = Some(i);
            break;
        }
        i += 1;
    }
    let Some(mut pos) = sub_pos else {
        return Ok(args);
    };
    let sub = args[pos].to_string_lossy().to_string();
    let partial = PARTIAL.iter().find(|(name, _, _)| *name == sub);
    if !CONFIGURABLE.contains(&sub.as_str()) && partial.is_none() {
        return Ok(args);
    }
    // Only the server's and agent's own file: the partial ones take no
    // --config flag of theirs.
    let found = if partial.is_some() {
        default_config_path()
    } else {
        take_config_path(&mut args)?
    };
    let Some((path, explicit)) = found else {
        return Ok(args);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(args),
        // The server's file is the server's to fail on: a command that only
        // borrows a key from it (`skiff snapshot restore --data-dir X`)
        // works without it.
        Err(e) if partial.is_some() => {
            eprintln!("skiff: warning: not reading {}: {e}", path.display());
            return Ok(args);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let flags = match partial {
        None => flags_from_yaml(&text, &path)?,
        Some((_, nested, keys)) => {
            if *nested {
                match args.get(pos + 1).map(|a| a.to_string_lossy()) {
                    Some(a) if !a.starts_with('-') && a != "help" => pos += 1,
                    _ => return Ok(args),
                }
            }
            let map = match yaml_map(&text, &path) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("skiff: warning: {e:#}");
                    return Ok(args);
                }
            };
            keys.iter()
                .filter_map(|(key, flag)| match map.get(*key) {
                    Some(Value::String(v)) => Some(OsString::from(format!("{flag}={v}"))),
                    _ => None,
                })
                .collect()
        }
    };
    let tail = args.split_off(pos + 1);
    args.extend(flags);
    args.extend(tail);
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn yaml_becomes_flags() {
        let flags = flags_from_yaml(
            "https-listen-port: 7443\ntls-san:\n  - a.example\n  - 10.0.0.1\ndebug: true\nquiet: false\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(
            strs(&flags),
            [
                "--https-listen-port=7443",
                "--tls-san=a.example",
                "--tls-san=10.0.0.1",
                "--debug"
            ]
        );
        assert!(flags_from_yaml("- a\n", Path::new("c.yaml")).is_err());
        assert!(flags_from_yaml("--x: 1\n", Path::new("c.yaml")).is_err());
        assert!(flags_from_yaml("a: {b: 1}\n", Path::new("c.yaml")).is_err());
        assert!(flags_from_yaml("", Path::new("c.yaml")).unwrap().is_empty());
    }

    #[test]
    fn config_flags_go_before_command_line_flags() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, "https-listen-port: 7443\n").unwrap();
        let args: Vec<OsString> = [
            "skiff",
            "--root",
            "/r",
            "server",
            "--config",
            cfg.to_str().unwrap(),
            "--https-listen-port=8443",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let out = strs(&args_with_config(args).unwrap());
        assert_eq!(
            out,
            [
                "skiff",
                "--root",
                "/r",
                "server",
                "--https-listen-port=7443",
                "--https-listen-port=8443"
            ]
        );
        let missing: Vec<OsString> = ["skiff", "server", "--config", "/nonexistent/x.yaml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(args_with_config(missing).is_err());
    }
}

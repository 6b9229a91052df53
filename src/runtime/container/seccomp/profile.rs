//! Docker's seccomp profile format (what `--security-opt seccomp=FILE`
//! reads, and what the default profile is written as) and its resolution
//! into the OCI spec's `linux.seccomp` for one container: rules whose
//! `includes`/`excludes` do not fit the container's capabilities, the
//! architecture or the kernel are dropped, as Docker does.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use serde::Deserialize;
use serde_json::{json, Value};

use super::SeccompError;

/// Docker's name (Go's GOARCH) for the host's architecture.
const NATIVE_ARCH: &str = "amd64";
const NATIVE_SCMP_ARCH: &str = "SCMP_ARCH_X86_64";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    pub syscalls: Option<Vec<Rule>>,
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    #[serde(default)]
    pub listener_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    pub action: LinuxSeccompAction,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub includes: Option<Condition>,
    #[serde(default)]
    pub excludes: Option<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: LinuxSeccompOperator,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What a rule is matched against.
pub struct Target<'a> {
    /// The container's bounding capabilities (`CAP_*`).
    pub caps: &'a [String],
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
}

/// `"5.8"` → (5, 8); a suffix such as `-rc1` or `.3` is ignored.
pub fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

impl Condition {
    /// `includes`: every listed capability held, the architecture listed,
    /// the kernel at least `minKernel`.
    fn holds_all(&self, t: &Target) -> Result<bool, SeccompError> {
        if let Some(caps) = &self.caps {
            if !caps.iter().all(|c| t.caps.contains(c)) {
                return Ok(false);
            }
        }
        if let Some(arches) = self.arches.as_ref().filter(|a| !a.is_empty()) {
            if !arches.iter().any(|a| a == NATIVE_ARCH) {
                return Ok(false);
            }
        }
        if let Some(min) = &self.min_kernel {
            let min = parse_kernel(min)
                .ok_or_else(|| SeccompError::Profile(format!("invalid minKernel {min:?}")))?;
            if t.kernel < min {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `excludes`: any listed capability held, or the architecture listed.
    fn holds_any(&self, t: &Target) -> bool {
        self.caps
            .as_ref()
            .is_some_and(|caps| caps.iter().any(|c| t.caps.contains(c)))
            || self
                .arches
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a == NATIVE_ARCH))
    }
}

impl Profile {
    pub fn parse(text: &str) -> Result<Profile, SeccompError> {
        serde_json::from_str(text).map_err(|e| SeccompError::Profile(e.to_string()))
    }

    /// The OCI `linux.seccomp` of a container with these capabilities.
    pub fn resolve(&self, target: &Target) -> Result<LinuxSeccomp, SeccompError> {
        if self.listener_path.is_some() || self.default_action == LinuxSeccompAction::ScmpActNotify
        {
            return Err(SeccompError::Unsupported(
                "seccomp notification (listenerPath, SCMP_ACT_NOTIFY)".into(),
            ));
        }
        let arches = self.arches()?;
        let mut syscalls = Vec::new();
        for rule in self.syscalls.iter().flatten() {
            if rule.action == LinuxSeccompAction::ScmpActNotify {
                return Err(SeccompError::Unsupported("SCMP_ACT_NOTIFY".into()));
            }
            if let Some(inc) = &rule.includes {
                if !inc.holds_all(target)? {
                    continue;
                }
            }
            if rule.excludes.as_ref().is_some_and(|e| e.holds_any(target)) {
                continue;
            }
            let names: Vec<&String> = rule
                .name
                .iter()
                .chain(rule.names.iter().flatten())
                .collect();
            if names.is_empty() {
                return Err(SeccompError::Profile(
                    "a syscalls entry has neither name nor names".into(),
                ));
            }
            let args: Vec<Value> = rule
                .args
                .iter()
                .flatten()
                .map(|a| {
                    if a.index > 5 {
                        return Err(SeccompError::Profile(format!(
                            "argument index {} (system calls have 6 arguments)",
                            a.index
                        )));
                    }
                    Ok(json!({"index": a.index, "value": a.value,
                              "valueTwo": a.value_two, "op": a.op}))
                })
                .collect::<Result<_, _>>()?;
            let mut s = json!({"names": names, "action": rule.action});
            if let Some(e) = rule.errno_ret {
                s["errnoRet"] = json!(e);
            }
            if !args.is_empty() {
                s["args"] = json!(args);
            }
            syscalls.push(s);
        }
        let mut seccomp = json!({
            "defaultAction": self.default_action,
            "architectures": arches,
            "syscalls": syscalls,
        });
        if let Some(e) = self.default_errno_ret {
            seccomp["defaultErrnoRet"] = json!(e);
        }
        if let Some(flags) = &self.flags {
            seccomp["flags"] = json!(flags);
        }
        serde_json::from_value(seccomp).map_err(|e| SeccompError::Profile(e.to_string()))
    }

    /// The x86 ABIs the profile names (Docker: `architectures`, or the
    /// native entry of `archMap` with its sub-architectures).
    fn arches(&self) -> Result<Vec<String>, SeccompError> {
        let listed: Vec<String> = match (&self.architectures, &self.arch_map) {
            (Some(a), Some(m)) if !a.is_empty() && !m.is_empty() => {
                return Err(SeccompError::Profile(
                    "architectures and archMap cannot both be set".into(),
                ))
            }
            (_, Some(m)) if !m.is_empty() => m
                .iter()
                .filter(|e| e.architecture == NATIVE_SCMP_ARCH)
                .flat_map(|e| {
                    std::iter::once(e.architecture.clone())
                        .chain(e.sub_architectures.iter().flatten().cloned())
                })
                .collect(),
            (Some(a), _) => a.clone(),
            (None, _) => Vec::new(),
        };
        let mut out = vec![NATIVE_SCMP_ARCH.to_string()];
        for a in listed {
            if ["SCMP_ARCH_X86", "SCMP_ARCH_X32"].contains(&a.as_str()) && !out.contains(&a) {
                out.push(a);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[&str]) -> Vec<String> {
        caps.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(parse_kernel("5"), Some((5, 0)));
        assert_eq!(parse_kernel("x"), None);
    }

    #[test]
    fn includes_and_excludes() {
        let p = Profile::parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                "syscalls": [
                  {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                  {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                  {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
                   "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
                  {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm"]}},
                  {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}}
                ]}"#,
        )
        .unwrap();
        let caps = target(&["CAP_CHOWN"]);
        let t = Target {
            caps: &caps,
            kernel: (6, 1),
        };
        let s = serde_json::to_value(p.resolve(&t).unwrap()).unwrap();
        let names: Vec<&str> = s["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["names"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read", "clone"]);
        assert_eq!(s["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(s["syscalls"][1]["args"][0]["valueTwo"], 0);

        let caps = target(&["CAP_SYS_ADMIN"]);
        let t = Target {
            caps: &caps,
            kernel: (6, 1),
        };
        let s = serde_json::to_value(p.resolve(&t).unwrap()).unwrap();
        assert_eq!(s["syscalls"][1]["names"][0], "mount");
        assert_eq!(s["syscalls"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn refused() {
        let caps = target(&[]);
        let t = Target {
            caps: &caps,
            kernel: (6, 1),
        };
        for bad in [
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        ] {
            assert!(Profile::parse(bad).unwrap().resolve(&t).is_err(), "{bad}");
        }
        assert!(Profile::parse(r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#).is_err());
    }
}

//! `skiff check-config`: whether this kernel and host have what skiff
//! needs (`hostcheck`), as a readable list with the fix for each failure.
//! Exits 1 when something required is missing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::hostcheck::{self, Host, Need};

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Check the tree at DIR (DIR/proc, DIR/sys, DIR/config) instead of
    /// this system (hidden: for tests simulating a kernel that lacks
    /// something).
    #[arg(long, value_name = "DIR", hide = true)]
    pub host_root: Option<PathBuf>,
}

pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let host = match &args.host_root {
        Some(root) => Host::at(root),
        None => Host::running(),
    };
    match &host.config_source {
        Some(p) => println!("Kernel configuration: {}", p.display()),
        None => println!(
            "Kernel configuration: not found (/proc/config.gz, /boot/config-<release>); checking what the running kernel shows"
        ),
    }
    println!();
    let outcomes = hostcheck::check(&host);
    let width = outcomes.iter().map(|o| o.name.len()).max().unwrap_or(0);
    let (mut failed, mut warned) = (0, 0);
    for o in &outcomes {
        let mark = match (o.ok, o.need) {
            (true, _) => "pass",
            (false, Need::Required) => {
                failed += 1;
                "FAIL"
            }
            (false, Need::Recommended) => {
                warned += 1;
                "warn"
            }
        };
        println!("{mark}  {:width$}  {}", o.name, o.found);
        if let Some(fix) = &o.fix {
            println!("      {:width$}  fix: {fix}", "");
        }
    }
    println!();
    if failed > 0 {
        println!(
            "{failed} required check(s) failed: skiff will not run here until they are fixed."
        );
        return Ok(ExitCode::FAILURE);
    }
    if warned > 0 {
        println!(
            "Everything skiff requires is here; {warned} recommended check(s) failed (see above)."
        );
    } else {
        println!("Everything skiff needs is here.");
    }
    Ok(ExitCode::SUCCESS)
}

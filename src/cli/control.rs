//! Commands that act on existing containers one by one, as docker's do:
//! `wait` (print each exit code).

use clap::Args;

use crate::runtime::container::client::Waiter;
use crate::runtime::container::lifecycle::{self, UNKNOWN_EXIT};
use crate::runtime::container::records::Status;
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `skiff wait`: block until each container stops, then print its exit
/// code (at once for one that has already stopped).
pub fn wait(engine: &Engine, args: WaitArgs) -> anyhow::Result<()> {
    let (paths, state) = (engine.paths(), engine.records()?);
    let mut failed = false;
    for name in &args.containers {
        let code = state
            .find(name)
            .map_err(anyhow::Error::from)
            .and_then(|rec| {
                if rec.status == Status::Exited {
                    return Ok(rec.exit_code.unwrap_or(UNKNOWN_EXIT));
                }
                // The shim sends the exit frame after recording the exit.
                if let Ok(Some(code)) = Waiter::open(paths, &rec.id).and_then(|mut w| w.wait(None))
                {
                    return Ok(code);
                }
                // No shim (it had just finished, or was killed): the record,
                // reconciled, says how it ended.
                lifecycle::reconcile(paths, state)?;
                Ok(state
                    .get(&rec.id)?
                    .and_then(|r| r.exit_code)
                    .unwrap_or(UNKNOWN_EXIT))
            });
        match code {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("skiff: error: {}", super::error_text(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Err(super::Quiet(1).into());
    }
    Ok(())
}

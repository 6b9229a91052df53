//! The async exit waiter (runtime/container/exits.rs): several containers
//! waited for at once on one thread, each exit reported with its code as it
//! happens; waiting on an exited container ends at once.

#[path = "support/containers.rs"]
mod containers;
mod support;

use futures::StreamExt;
use skiff::runtime::container::exits::{self, Exit};
use skiff::runtime::container::Paths;

#[test]
fn exits_of_several_containers_on_one_thread() {
    let e = containers::Engine::new();
    let detached = |script: &str| {
        e.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            script,
        ])
    };
    let slow = detached("sleep 1; exit 3");
    let fast = detached("sleep 0.2; exit 5");
    let (slow, fast) = (slow.trim().to_string(), fast.trim().to_string());
    let paths = Paths::new(&e.root(), &e.run_dir());
    // One thread for every wait: no thread per container.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let got: Vec<(String, Exit)> = rt.block_on(async {
        exits::wait_all(&paths, [slow.clone(), fast.clone()])
            .map(|(id, exit)| (id, exit.expect("wait")))
            .collect()
            .await
    });
    let code = |id: &str| got.iter().find(|(i, _)| i == id).map(|(_, x)| *x);
    assert_eq!(code(&slow), Some(Exit::Code(3)), "{got:?}");
    assert_eq!(code(&fast), Some(Exit::Code(5)), "{got:?}");
    // The record was written before the exit was reported.
    assert_eq!(e.inspect(&fast)["State"]["ExitCode"], 5);

    // Waiting again on an exited container ends at once: the shim, if it
    // is still there, repeats the code; once it is gone nobody answers.
    let again = rt.block_on(exits::wait(&paths, &slow)).expect("wait");
    assert!(matches!(again, Exit::Code(3) | Exit::NoShim), "{again:?}");
    assert_eq!(e.inspect(&slow)["State"]["ExitCode"], 3);
    e.ok(&["rm", &slow, &fast]);
    e.assert_clean();
}

//! FakePodRuntime: a fake of the runtime (named as one), for unit tests of
//! what drives it — restart back-off, probes, pod status — without root or
//! a kernel. It keeps containers as plain state, records every call, and
//! lets the test say when a container exits and which call fails next.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{
    ContainerSpec, ContainerState, ContainerStatus, ExitStream, PodRuntime, PodRuntimeError,
    SandboxConfig,
};
use crate::runtime::container::exits::Exit;
use crate::runtime::sandbox::Sandbox;

/// A call as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    RunSandbox(String),
    RemoveSandbox(String),
    Create { sandbox: String, name: String },
    Start(String),
    Stop(String),
    Remove(String),
    Exec { id: String, command: Vec<String> },
}

/// A kind of call, to script a failure for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    RunSandbox,
    RemoveSandbox,
    Create,
    Start,
    Stop,
    Remove,
    Exec,
}

/// What a stopped container exits with (as a shell killed by SIGTERM).
pub const STOP_EXIT_CODE: i32 = 143;

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    sandboxes: BTreeSet<String>,
    containers: BTreeMap<String, ContainerStatus>,
    failures: BTreeMap<Op, VecDeque<String>>,
    /// What the next execs give (exit 0, no output, when none is queued).
    execs: VecDeque<super::ExecOutput>,
    next_id: u64,
}

pub struct FakePodRuntime {
    state: Mutex<State>,
    exited: broadcast::Sender<(String, i32)>,
}

impl Default for FakePodRuntime {
    fn default() -> FakePodRuntime {
        FakePodRuntime::new()
    }
}

impl FakePodRuntime {
    pub fn new() -> FakePodRuntime {
        FakePodRuntime {
            state: Mutex::new(State::default()),
            exited: broadcast::channel(1024).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding it has failed anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The next call of kind `op` fails with `message` (queued: several
    /// calls fail in turn).
    pub fn fail_next(&self, op: Op, message: &str) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(message.to_string());
    }

    /// The next exec (in any container) gives `code` (None: timed out).
    pub fn exec_gives(&self, code: Option<i32>, output: &str) {
        self.state().execs.push_back(super::ExecOutput {
            exit_code: code,
            output: output.as_bytes().to_vec(),
        });
    }

    /// Container `id` exits with `code` now (its waiters hear it).
    pub fn exit(&self, id: &str, code: i32) {
        if self.finish(id, code) {
            let _ = self.exited.send((id.to_string(), code));
        }
    }

    fn finish(&self, id: &str, code: i32) -> bool {
        let mut st = self.state();
        match st.containers.get_mut(id) {
            Some(c) if c.state != ContainerState::Exited => {
                c.state = ContainerState::Exited;
                c.exit_code = Some(code);
                c.finished_at = Some(Utc::now());
                true
            }
            _ => false,
        }
    }

    /// Record `call`; fail if a failure is scripted for `op`.
    fn enter(&self, op: Op, call: Call) -> Result<(), PodRuntimeError> {
        let mut st = self.state();
        st.calls.push(call);
        match st.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(msg) => Err(PodRuntimeError::Scripted(msg)),
            None => Ok(()),
        }
    }
}

impl PodRuntime for FakePodRuntime {
    async fn run_sandbox(&self, config: SandboxConfig) -> Result<Sandbox, PodRuntimeError> {
        self.enter(Op::RunSandbox, Call::RunSandbox(config.name.clone()))?;
        let mut st = self.state();
        if !st.sandboxes.insert(config.name.clone()) {
            return Err(crate::runtime::sandbox::SandboxError::Exists(config.name).into());
        }
        let n = st.sandboxes.len() as u8;
        let dir = std::path::PathBuf::from("/fake/sandboxes").join(&config.name);
        Ok(Sandbox {
            id: format!("{n:064x}"),
            created: Utc::now(),
            hostname: config.hostname.unwrap_or_else(|| config.name.clone()),
            name: config.name,
            ip: std::net::Ipv4Addr::new(10, 88, 0, n.wrapping_add(1)),
            net: dir.join("net"),
            ipc: dir.join("ipc"),
            uts: dir.join("uts"),
            pid: config.share_pid.then(|| dir.join("pid")),
            host_ipc: config.host_ipc,
            host_network: config.host_network,
        })
    }

    async fn sandbox_names(&self) -> Result<Vec<String>, PodRuntimeError> {
        Ok(self.state().sandboxes.iter().cloned().collect())
    }

    async fn sandbox_status(&self, name: &str) -> Result<Option<Sandbox>, PodRuntimeError> {
        // The fake keeps names only; an adopted sandbox gets a fixed address.
        Ok(self.state().sandboxes.contains(name).then(|| Sandbox {
            id: String::new(),
            created: Utc::now(),
            hostname: name.to_string(),
            name: name.to_string(),
            ip: std::net::Ipv4Addr::new(10, 88, 0, 1),
            net: std::path::PathBuf::from("/fake/sandboxes")
                .join(name)
                .join("net"),
            ipc: std::path::PathBuf::from("/fake/sandboxes")
                .join(name)
                .join("ipc"),
            uts: std::path::PathBuf::from("/fake/sandboxes")
                .join(name)
                .join("uts"),
            pid: None,
            host_ipc: false,
            host_network: false,
        }))
    }

    async fn remove_sandbox(&self, name: &str) -> Result<(), PodRuntimeError> {
        self.enter(Op::RemoveSandbox, Call::RemoveSandbox(name.to_string()))?;
        if self.state().sandboxes.remove(name) {
            Ok(())
        } else {
            Err(crate::runtime::sandbox::SandboxError::NotFound(name.to_string()).into())
        }
    }

    async fn create_container(
        &self,
        sandbox: &str,
        spec: ContainerSpec,
    ) -> Result<String, PodRuntimeError> {
        let mut st = self.state();
        st.next_id += 1;
        let id = format!("{:064x}", st.next_id);
        let name = spec.name.clone().unwrap_or_else(|| id[..12].to_string());
        drop(st);
        self.enter(
            Op::Create,
            Call::Create {
                sandbox: sandbox.to_string(),
                name: name.clone(),
            },
        )?;
        let mut st = self.state();
        if !st.sandboxes.contains(sandbox) {
            return Err(
                crate::runtime::sandbox::SandboxError::NotFound(sandbox.to_string()).into(),
            );
        }
        st.containers.insert(
            id.clone(),
            ContainerStatus {
                id: id.clone(),
                name,
                image: spec.image,
                state: ContainerState::Created,
                exit_code: None,
                started_at: None,
                finished_at: None,
                oom_killed: false,
                sandbox: Some(sandbox.to_string()),
                labels: spec.labels,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), PodRuntimeError> {
        self.enter(Op::Start, Call::Start(id.to_string()))?;
        let mut st = self.state();
        let c = st
            .containers
            .get_mut(id)
            .ok_or_else(|| PodRuntimeError::NotFound(id.to_string()))?;
        if c.state == ContainerState::Created {
            c.state = ContainerState::Running;
            c.started_at = Some(Utc::now());
        }
        Ok(())
    }

    async fn stop_container(
        &self,
        id: &str,
        _timeout: Duration,
    ) -> Result<Option<i32>, PodRuntimeError> {
        self.enter(Op::Stop, Call::Stop(id.to_string()))?;
        if !self.state().containers.contains_key(id) {
            return Err(PodRuntimeError::NotFound(id.to_string()));
        }
        let running = self.state().containers[id].state != ContainerState::Exited;
        self.exit(id, STOP_EXIT_CODE);
        Ok(running.then_some(STOP_EXIT_CODE))
    }

    async fn remove_container(&self, id: &str) -> Result<(), PodRuntimeError> {
        self.enter(Op::Remove, Call::Remove(id.to_string()))?;
        self.exit(id, 137);
        match self.state().containers.remove(id) {
            Some(_) => Ok(()),
            None => Err(PodRuntimeError::NotFound(id.to_string())),
        }
    }

    fn exits(&self, ids: Vec<String>) -> ExitStream {
        // Subscribed before reading the state, so no exit falls between.
        let rx = self.exited.subscribe();
        let st = self.state();
        let mut ready = VecDeque::new();
        let mut waiting = BTreeSet::new();
        for id in ids {
            match st.containers.get(&id) {
                Some(c) if c.state == ContainerState::Exited => {
                    ready.push_back((id, Ok(Exit::Code(c.exit_code.unwrap_or(0)))))
                }
                Some(_) => {
                    waiting.insert(id);
                }
                None => ready.push_back((id, Ok(Exit::NoShim))),
            }
        }
        drop(st);
        let pending = futures::stream::iter(ready);
        let later = futures::stream::unfold((rx, waiting), |(mut rx, mut waiting)| async move {
            while !waiting.is_empty() {
                match rx.recv().await {
                    Ok((id, code)) if waiting.remove(&id) => {
                        return Some(((id, Ok(Exit::Code(code))), (rx, waiting)))
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
            None
        });
        Box::pin(pending.chain(later))
    }

    async fn list_containers(
        &self,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<ContainerStatus>, PodRuntimeError> {
        Ok(self
            .state()
            .containers
            .values()
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .cloned()
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus, PodRuntimeError> {
        self.state()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| PodRuntimeError::NotFound(id.to_string()))
    }

    async fn container_stats(
        &self,
        id: &str,
    ) -> Result<crate::runtime::container::cgroups::Stats, PodRuntimeError> {
        Err(PodRuntimeError::NotFound(id.to_string()))
    }

    async fn exec_process(
        &self,
        id: &str,
        _command: Vec<String>,
        _tty: bool,
    ) -> Result<std::process::Command, PodRuntimeError> {
        // A fake has no processes to run.
        Err(PodRuntimeError::NotFound(id.to_string()))
    }

    async fn attach(
        &self,
        id: &str,
        _stdin: bool,
        _stdin_once: bool,
    ) -> Result<super::Attached, PodRuntimeError> {
        // A fake has no processes to attach to.
        Err(PodRuntimeError::NotFound(id.to_string()))
    }

    async fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        _timeout: Duration,
    ) -> Result<super::ExecOutput, PodRuntimeError> {
        self.enter(
            Op::Exec,
            Call::Exec {
                id: id.to_string(),
                command,
            },
        )?;
        let mut st = self.state();
        if st.containers.get(id).map(|c| c.state) != Some(ContainerState::Running) {
            return Err(PodRuntimeError::NotFound(id.to_string()));
        }
        Ok(st.execs.pop_front().unwrap_or(super::ExecOutput {
            exit_code: Some(0),
            output: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn scripted_failures_then_exits_in_order() {
        let rt = FakePodRuntime::new();
        block_on(async {
            rt.fail_next(Op::RunSandbox, "no addresses left");
            let err = rt.run_sandbox(SandboxConfig {
                name: "p".into(),
                ..Default::default()
            });
            assert_eq!(err.await.unwrap_err().to_string(), "no addresses left");
            rt.run_sandbox(SandboxConfig {
                name: "p".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            let spec = |name: &str| ContainerSpec {
                name: Some(name.into()),
                labels: [("pod".to_string(), "p".to_string())].into(),
                ..Default::default()
            };
            let a = rt.create_container("p", spec("a")).await.unwrap();
            let b = rt.create_container("p", spec("b")).await.unwrap();
            assert!(rt
                .create_container("nope", spec("c"))
                .await
                .unwrap_err()
                .is_not_found());
            rt.start_container(&a).await.unwrap();
            rt.start_container(&b).await.unwrap();
            rt.exit(&b, 1);
            let mut exits = rt.exits(vec![a.clone(), b.clone()]);
            assert_eq!(
                exits.next().await.map(|(i, e)| (i, e.ok())),
                Some((b.clone(), Some(Exit::Code(1))))
            );
            rt.exit(&a, 3);
            assert_eq!(
                exits.next().await.map(|(i, e)| (i, e.ok())),
                Some((a.clone(), Some(Exit::Code(3))))
            );
            assert!(exits.next().await.is_none());
            let status = rt.container_status(&a).await.unwrap();
            assert_eq!(
                (status.state, status.exit_code),
                (ContainerState::Exited, Some(3))
            );
            let pod = [("pod".to_string(), "p".to_string())].into();
            assert_eq!(rt.list_containers(pod).await.unwrap().len(), 2);
            assert_eq!(
                rt.stop_container(&a, Duration::ZERO).await.unwrap(),
                None,
                "already exited"
            );
            rt.remove_container(&a).await.unwrap();
            assert!(rt.container_status(&a).await.unwrap_err().is_not_found());
        });
        assert_eq!(rt.calls()[0], Call::RunSandbox("p".into()));
        assert_eq!(
            rt.calls().last(),
            Some(&Call::Remove(
                rt.calls()
                    .iter()
                    .find_map(|c| match c {
                        Call::Start(i) => Some(i.clone()),
                        _ => None,
                    })
                    .unwrap()
            ))
        );
    }
}

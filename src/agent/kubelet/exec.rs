//! exec and attach, as the API server's pods/exec and pods/attach reach
//! them: the request is checked and the transport negotiated here
//! (upgrade.rs: a WebSocket first, SPDY/3.1 as kubectl's fallback); the
//! session runs in exec_ws.rs or exec_spdy.rs over what stdio.rs gives:
//! for exec, the runtime's exec shim (a pty's slave for its stdio with a
//! TTY, so a resize reaches it as SIGWINCH and it passes the size on to
//! the container's own terminal); for attach, the container's own main
//! process through its shim (attach.rs).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{attach, exec_spdy, exec_ws, lookup, spdy_conn, stdio, text, upgrade, Body};
use crate::agent::pods::worker::WorkerCtx;
use crate::runtime::pod::{ContainerState, PodRuntime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
}

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string())?;
        let mut p = Params::default();
        for (k, v) in pairs {
            let on = v == "true" || v == "1";
            match k.as_str() {
                "command" => p.command.push(v),
                "input" | "stdin" => p.stdin = on,
                "output" | "stdout" => p.stdout = on,
                "error" | "stderr" => p.stderr = on,
                "tty" => p.tty = on,
                _ => {}
            }
        }
        // A terminal merges stderr into stdout.
        if p.tty {
            p.stderr = false;
        }
        if !(p.stdin || p.stdout || p.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(p)
    }
}

/// What exec and attach speak, in our order of preference, on either
/// transport (upgrade.rs): v5 adds the close of stdin to v4.
const PROTOCOLS: &[&str] = &[V5, V4];

pub async fn serve<R: PodRuntime>(
    ctx: Arc<WorkerCtx<R>>,
    kind: Kind,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let params = match Params::parse(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    if kind == Kind::Exec && params.command.is_empty() {
        return text(StatusCode::BAD_REQUEST, "you must specify a command");
    }
    let found = match lookup::find(&ctx.runtime, ns, pod, container).await {
        Ok(f) => f,
        Err(e) => return text(StatusCode::NOT_FOUND, e),
    };
    let current = &found.instances[0];
    if current.state != ContainerState::Running {
        return text(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not running"),
        );
    }
    let transport = match upgrade::negotiate(req.headers(), PROTOCOLS, PROTOCOLS) {
        Ok(t) => t,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    // An exec's command is made before the 101, so that a container that
    // cannot take one is a plain error.
    let command = match kind {
        Kind::Exec => match ctx
            .runtime
            .exec_process(&current.id, params.command.clone(), params.tty)
            .await
        {
            Ok(c) => Some(c),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Kind::Attach => None,
    };
    let response = upgrade::switching(&transport);
    let id = current.id.clone();
    let stdin_once = current
        .labels
        .get(crate::agent::pods::spec::LABEL_STDIN_ONCE)
        .is_some_and(|v| v == "true");
    tokio::spawn(async move {
        let Some((io, _slot)) = upgrade::upgraded(req).await else {
            return;
        };
        // The process starts only once the client is there to hear it.
        let open = async {
            match command {
                Some(cmd) => {
                    stdio::spawn(cmd, &params).map_err(|e| format!("starting the exec: {e}"))
                }
                None => attach::open(&ctx.runtime, &id, &params, stdin_once).await,
            }
        };
        let ended = match transport {
            upgrade::Transport::WebSocket { protocol, .. } => {
                let ws = upgrade::websocket(io).await;
                exec_ws::session(ws, protocol == V5, open.await).await
            }
            upgrade::Transport::Spdy { .. } => {
                let conn = spdy_conn::Conn::start(io);
                exec_spdy::session(conn, params.clone(), open).await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(container = %id, ?kind, "exec session: {e}");
        }
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let p = Params::parse(Some(
            "command=sh&command=-c&command=echo+hi&stdin=true&stdout=true&tty=true&stderr=true",
        ))
        .unwrap();
        assert_eq!(p.command, ["sh", "-c", "echo hi"]);
        assert!(p.stdin && p.stdout && p.tty && !p.stderr);
        assert!(Params::parse(Some("command=ls")).is_err());
    }
}

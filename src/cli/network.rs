//! How the container network shows in `ps`, `inspect` and `network inspect`.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::net::Attachment;
use crate::runtime::container::options::{Network, RunOptions};
use crate::runtime::engine::Engine;

#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// The bridge network and its containers as JSON, like `docker network inspect bridge`.
    Inspect,
}

/// Attachments by container id (empty when the node has no network state).
pub fn attachments(engine: &Engine) -> HashMap<String, Attachment> {
    match engine.network(None).attachments() {
        Ok(all) => all.into_iter().map(|a| (a.id.clone(), a)).collect(),
        Err(e) => {
            tracing::warn!("reading the network state: {e}");
            HashMap::new()
        }
    }
}

/// One container's attachment (none when it has no bridge network).
pub fn attachment(engine: &Engine, id: &str) -> Option<Attachment> {
    engine.network(None).attachment(id).unwrap_or_else(|e| {
        tracing::warn!("reading the network state: {e}");
        None
    })
}

/// Docker's PORTS column: `0.0.0.0:8080->80/tcp, …`.
pub fn ports_column(a: Option<&Attachment>) -> String {
    a.map(|a| {
        a.ports
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// The network mode recorded in a container's options, as docker names it.
pub fn mode(options: &RunOptions) -> String {
    if let Some(name) = &options.sandbox {
        return format!("sandbox:{name}");
    }
    options
        .network
        .as_ref()
        .map_or_else(|| "none".into(), Network::mode)
}

/// docker inspect's `NetworkSettings`.
pub fn settings(a: Option<&Attachment>) -> Value {
    let Some(a) = a else {
        return json!({"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "Ports": {}, "Networks": {}});
    };
    let mut ports = serde_json::Map::new();
    for p in &a.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!({
                "HostIp": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    json!({
        "IPAddress": a.ip.to_string(),
        "IPPrefixLen": a.prefix,
        "Gateway": a.gateway.to_string(),
        "SandboxKey": a.netns,
        "Ports": ports,
        "Networks": {
            "bridge": {
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": a.prefix,
                "Gateway": a.gateway.to_string(),
                "Bridge": a.bridge,
                "HostVeth": a.host_veth,
            }
        },
    })
}

/// `skiff network inspect`: the bridge and every attachment.
pub fn inspect(engine: &Engine) -> anyhow::Result<()> {
    let net = engine.network(None);
    let all = net.attachments()?;
    let out = json!([{
        "Name": "bridge",
        "Driver": "bridge",
        "Options": {"com.docker.network.bridge.name": crate::net::host::DEFAULT_BRIDGE},
        "Containers": all.iter().map(|a| (a.id.clone(), json!({
            "IPv4Address": format!("{}/{}", a.ip, a.prefix),
            "Gateway": a.gateway.to_string(),
            "HostVeth": a.host_veth,
            "Ports": a.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        }))).collect::<serde_json::Map<_, _>>(),
    }]);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

//! `skiff kubeconfig`: print the admin kubeconfig a `skiff server` wrote
//! (its `--write-kubeconfig`), optionally with another server address, to
//! copy to a workstation (`skiff kubeconfig --server https://IP:6443 >
//! ~/.kube/config`). It holds the cluster's admin credentials: printed
//! only to whoever can read the file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The kubeconfig `skiff server` wrote (its --write-kubeconfig).
    #[arg(long, value_name = "FILE", default_value = "/etc/skiff/skiff.yaml")]
    pub kubeconfig: PathBuf,

    /// Print it with this API server address (https://HOST:PORT) instead
    /// of the one the server wrote (its own loopback address, usually).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

pub fn kubeconfig(args: KubeconfigArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.kubeconfig).with_context(|| {
        format!(
            "reading {}: start `skiff server` first, or pass --kubeconfig where its --write-kubeconfig wrote it",
            args.kubeconfig.display()
        )
    })?;
    let Some(server) = args.server else {
        print!("{text}");
        return Ok(());
    };
    let uri: http::Uri = server
        .parse()
        .ok()
        .filter(|u: &http::Uri| u.scheme_str() == Some("https") && u.host().is_some())
        .with_context(|| format!("--server {server:?} is not an https:// URL with a host"))?;
    let mut doc: serde_json::Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not a kubeconfig", args.kubeconfig.display()))?;
    let clusters = doc
        .get_mut("clusters")
        .and_then(serde_json::Value::as_array_mut)
        .with_context(|| format!("{} has no clusters", args.kubeconfig.display()))?;
    for c in clusters {
        if let Some(cluster) = c
            .get_mut("cluster")
            .and_then(serde_json::Value::as_object_mut)
        {
            let url = uri.to_string();
            cluster.insert("server".into(), url.trim_end_matches('/').into());
        }
    }
    print!(
        "{}",
        serde_saphyr::to_string(&doc).context("writing the kubeconfig")?
    );
    Ok(())
}

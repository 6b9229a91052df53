//! The control plane: store, API server, PKI, and (later) controllers and the
//! scheduler, wired together by [`run`].

pub mod apiserver;
pub mod pki;
pub mod store;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Where skiff keeps its state (database, certificates, token).
    #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,

    /// Where to write the admin kubeconfig (mode 0600).
    #[arg(long, default_value = "/etc/skiff/skiff.yaml")]
    pub write_kubeconfig: PathBuf,

    /// Extra names or IPs for the serving certificate (repeatable).
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_san: Vec<String>,
}

pub fn run_blocking(args: ServerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

pub async fn run(_args: ServerArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet wired")
}

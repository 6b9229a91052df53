//! `skiff secrets-encrypt status|rotate-keys|reencrypt`, k3s's commands for
//! encryption at rest. They ask the running server through its API
//! (`/skiff/v1/secrets-encryption`, see server/apiserver/encryption.rs) with
//! the admin kubeconfig: the server is the database's only writer. k3s's
//! staged `prepare`/`rotate`/`enable`/`disable` are not offered:
//! `rotate-keys` does the whole rotation in one step, and turning
//! encryption off is an edit of the configuration (identity first) and a
//! `reencrypt`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Deserialize;

const PATH: &str = "/skiff/v1/secrets-encryption";

/// A rotation re-encrypts every Secret within one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Subcommand)]
pub enum SecretsEncryptCommand {
    /// Show whether Secrets are encrypted at rest, the keys, and how many
    /// stored objects the active key wrote.
    Status(StatusArgs),
    /// Make a new key the active one, re-encrypt everything with it, then
    /// drop the older keys.
    RotateKeys(Conn),
    /// Re-encrypt every stored object that the active key did not write.
    Reencrypt(ReencryptArgs),
}

#[derive(Debug, Args)]
pub struct Conn {
    /// The admin kubeconfig the server wrote.
    #[arg(long, env = "KUBECONFIG", default_value = "/etc/skiff/skiff.yaml")]
    pub kubeconfig: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReencryptArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Then compact the store's history to now: older versions of every
    /// object (plaintext from before encryption, ciphertext under older
    /// keys) are deleted and their bytes zeroed; watches from before then
    /// have to list again.
    #[arg(long)]
    pub compact: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// `json` for the server's answer as it is.
    #[arg(long, short = 'o', value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    enabled: bool,
    #[serde(default)]
    config_file: Option<String>,
    #[serde(default)]
    managed: bool,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    active_key: Option<Key>,
    #[serde(default)]
    keys: Vec<Key>,
    #[serde(default)]
    objects: Option<Census>,
}

#[derive(Debug, Deserialize)]
struct Key {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    active: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Census {
    active: u64,
    stale: u64,
    unreadable: u64,
}

#[derive(Debug, Deserialize)]
struct Rewritten {
    rewritten: u64,
    unchanged: u64,
    skipped: u64,
    failed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rotation {
    new_key: String,
    reencrypted: Rewritten,
    objects: Census,
    old_keys_removed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reencryption {
    reencrypted: Rewritten,
    objects: Census,
    #[serde(default)]
    compacted_revision: Option<i64>,
}

pub fn secrets_encrypt(cmd: SecretsEncryptCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cmd))
}

async fn run(cmd: SecretsEncryptCommand) -> anyhow::Result<()> {
    match cmd {
        SecretsEncryptCommand::Status(args) => {
            let text = call(&args.conn, http::Method::GET, PATH).await?;
            if args.output == "json" {
                println!("{text}");
                return Ok(());
            }
            let status: Status = serde_json::from_str(&text).context("reading the status")?;
            print!("{}", show_status(&status));
            Ok(())
        }
        SecretsEncryptCommand::RotateKeys(conn) => {
            let text = call(&conn, http::Method::POST, &format!("{PATH}/rotate-keys")).await?;
            let r: Rotation = serde_json::from_str(&text).context("reading the answer")?;
            println!("New active key: {}", r.new_key);
            print_rewritten(&r.reencrypted, &r.objects);
            if r.old_keys_removed {
                println!("Older keys removed from the configuration.");
            }
            finished(&r.reencrypted, &r.objects, "older keys kept")
        }
        SecretsEncryptCommand::Reencrypt(args) => {
            let query = if args.compact { "?compact=true" } else { "" };
            let path = format!("{PATH}/reencrypt{query}");
            let text = call(&args.conn, http::Method::POST, &path).await?;
            let r: Reencryption = serde_json::from_str(&text).context("reading the answer")?;
            print_rewritten(&r.reencrypted, &r.objects);
            if let Some(rev) = r.compacted_revision {
                println!("History compacted at revision {rev}: older versions are deleted.");
            }
            finished(&r.reencrypted, &r.objects, "run it again")
        }
    }
}

fn print_rewritten(done: &Rewritten, now: &Census) {
    println!(
        "Re-encrypted: {} rewritten, {} already under the active key, {} written meanwhile, {} failed",
        done.rewritten, done.unchanged, done.skipped, done.failed
    );
    println!(
        "Stored objects: {} under the active key, {} stale, {} unreadable",
        now.active, now.stale, now.unreadable
    );
}

fn finished(done: &Rewritten, now: &Census, then: &str) -> anyhow::Result<()> {
    if done.failed > 0 || now.stale > 0 || now.unreadable > 0 {
        bail!(
            "not everything is under the active key ({} failed, {} stale, {} unreadable; the \
             server's log names them): {then}",
            done.failed,
            now.stale,
            now.unreadable
        );
    }
    Ok(())
}

fn key_type(kind: &str) -> &str {
    match kind {
        "aescbc" => "AES-CBC",
        "aesgcm" => "AES-GCM",
        other => other,
    }
}

fn show_status(s: &Status) -> String {
    let mut out = String::new();
    if !s.enabled {
        out.push_str("Encryption Status: Disabled\n");
        if let Some(f) = &s.config_file {
            out.push_str(&format!(
                "Configuration: {f} (its first provider is identity: nothing is encrypted)\n"
            ));
        }
        return out;
    }
    out.push_str("Encryption Status: Enabled\n");
    if let Some(f) = &s.config_file {
        let how = if s.managed {
            "generated for --secrets-encryption"
        } else {
            "--encryption-provider-config"
        };
        out.push_str(&format!("Configuration: {f} ({how})\n"));
    }
    out.push_str(&format!(
        "Encrypted Resources: {}\n",
        s.resources.join(", ")
    ));
    if let Some(k) = &s.active_key {
        out.push_str(&format!("Active Key Type: {}\n", key_type(&k.kind)));
        out.push_str(&format!("Active Key: {}\n", k.name));
    }
    let c = s.objects.as_ref();
    let n = |f: fn(&Census) -> u64| c.map(f).unwrap_or(0);
    out.push_str(&format!(
        "Stored Objects: {} under the active key, {} stale, {} unreadable\n",
        n(|c| c.active),
        n(|c| c.stale),
        n(|c| c.unreadable)
    ));
    out.push('\n');
    let mut table = super::util::listing(["ACTIVE", "KEY TYPE", "NAME"]);
    for k in &s.keys {
        table.add_row([
            if k.active { "*" } else { "" }.to_string(),
            key_type(&k.kind).to_string(),
            k.name.clone(),
        ]);
    }
    out.push_str(&super::util::listing_text(&table));
    out
}

/// One request to the server with the admin kubeconfig; the Status of a
/// refusal becomes the error's text.
async fn call(conn: &Conn, method: http::Method, path: &str) -> anyhow::Result<String> {
    // rustls needs a process-wide provider; ring is the only one built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // KUBECONFIG may list several files: the first one is the admin's.
    let file = conn
        .kubeconfig
        .to_str()
        .and_then(|s| s.split(':').next())
        .map(PathBuf::from)
        .unwrap_or_else(|| conn.kubeconfig.clone());
    let kubeconfig = kube::config::Kubeconfig::read_from(&file)
        .with_context(|| format!("reading the kubeconfig {}", file.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("reading the kubeconfig {}", file.display()))?;
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    config.connect_timeout = Some(Duration::from_secs(10));
    let url = config.cluster_url.clone();
    let client = kube::Client::try_from(config).context("making the API client")?;
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Vec::new())
        .context("building the request")?;
    match client.request_text(request).await {
        Ok(text) => Ok(text),
        Err(kube::Error::Api(status)) => bail!("the server at {url} refused: {}", status.message),
        Err(e) => Err(anyhow::Error::new(e).context(format!("asking the server at {url}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_the_keys_with_the_active_one_marked() {
        let s: Status = serde_json::from_value(serde_json::json!({
            "enabled": true, "configFile": "/d/server/cred/encryption-config.json", "managed": true,
            "resources": ["secrets"],
            "activeKey": {"type": "aescbc", "name": "new", "active": true},
            "keys": [{"type": "aescbc", "name": "new", "active": true},
                     {"type": "aesgcm", "name": "old", "active": false}],
            "objects": {"active": 3, "stale": 1, "unreadable": 0}
        }))
        .unwrap();
        let text = show_status(&s);
        assert!(text.starts_with("Encryption Status: Enabled\n"), "{text}");
        assert!(
            text.contains("Active Key Type: AES-CBC\nActive Key: new\n"),
            "{text}"
        );
        assert!(text.contains("3 under the active key, 1 stale"), "{text}");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("new") || l.contains("old"))
            .collect();
        assert!(
            rows.iter()
                .any(|r| r.starts_with('*') && r.contains("AES-CBC")),
            "{text}"
        );
        assert!(
            rows.iter()
                .any(|r| !r.starts_with('*') && r.contains("AES-GCM")),
            "{text}"
        );

        let off: Status = serde_json::from_value(serde_json::json!({"enabled": false})).unwrap();
        assert_eq!(show_status(&off), "Encryption Status: Disabled\n");
    }
}

//! `skiff token create|list|delete`: join tokens beyond the server's own
//! (k3s's `k3s token`, kubeadm's `kubeadm token`). Each is a bootstrap
//! token — a Secret `kube-system/bootstrap-token-<id>` in upstream's format
//! (server/join/tokens.rs) — written through the API with the admin
//! kubeconfig, and handed out as `K10<sha256 of the cluster CA>::<id>.<secret>`
//! so that the agent pins the CA before it sends the secret. The server
//! deletes tokens once they expire (controllers/token_cleaner.rs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::server::join::tokens::{self, Expiry};

/// kubeadm's and k3s's defaults.
const DEFAULT_TTL: &str = "24h";
const DEFAULT_USAGES: &str = "signing,authentication";
const DEFAULT_GROUP: &str = "system:bootstrappers:skiff:default-node-token";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token and print it as a join token
    /// (K10<sha256 of the cluster CA>::<id>.<secret>) for `skiff agent --token`.
    Create(CreateArgs),
    /// List the bootstrap tokens (the server's own token is not one).
    #[command(visible_alias = "ls")]
    List(Conn),
    /// Delete bootstrap tokens by id, <id>.<secret> or the full join token.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct Conn {
    /// The admin kubeconfig the server wrote.
    #[arg(long, env = "KUBECONFIG", default_value = "/etc/skiff/skiff.yaml")]
    pub kubeconfig: PathBuf,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The token to create, <id>.<secret> ([a-z0-9]{6}.[a-z0-9]{16});
    /// random when not given.
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
    /// How long the token joins nodes before the server deletes it (Go
    /// duration: 30m, 24h, 1h30m); 0 for never.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TTL, value_parser = parse_ttl)]
    pub ttl: Ttl,
    /// What the token may be used for: authentication (joining nodes),
    /// signing.
    #[arg(long, value_name = "USAGE,...", value_delimiter = ',', default_value = DEFAULT_USAGES)]
    pub usages: Vec<String>,
    /// What the token is for, shown by `skiff token list`.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Extra groups of those who authenticate with the token
    /// (system:bootstrappers:...) [default:
    /// system:bootstrappers:skiff:default-node-token for a token used for
    /// authentication]
    #[arg(long, value_name = "GROUP,...", value_delimiter = ',')]
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Token ids, <id>.<secret>, or join tokens.
    #[arg(value_name = "TOKEN", required = true)]
    pub tokens: Vec<String>,
}

/// A token's lifetime: None joins until it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Option<Duration>);

fn parse_ttl(s: &str) -> Result<Ttl, String> {
    let secs = crate::api::duration::parse_go(s.trim())
        .ok_or_else(|| format!("invalid duration {s:?}: use e.g. 30m, 24h or 0 for never"))?;
    if secs < 0.0 {
        return Err(format!("invalid duration {s:?}: it cannot be negative"));
    }
    if secs == 0.0 {
        return Ok(Ttl(None));
    }
    // The expiration is written in whole seconds: round up, so that a
    // TTL under a second still lets the token join for a moment.
    Ok(Ttl(Some(Duration::from_secs(secs.ceil() as u64))))
}

/// What `skiff token create` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewToken {
    id: String,
    secret: String,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    usages: Vec<String>,
    description: Option<String>,
    groups: Vec<String>,
}

impl NewToken {
    /// The token `args` ask for, checked as upstream checks it.
    fn from_args(args: &CreateArgs, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Self> {
        let (id, secret) = match &args.token {
            Some(t) => {
                let t = tokens::secret_part(t);
                let (id, secret) = tokens::split_bootstrap(t).with_context(|| {
                    format!("{t:?} is not a bootstrap token: use <id>.<secret> with 6 and 16 characters of [a-z0-9], or give none for a random one")
                })?;
                (id.to_string(), secret.to_string())
            }
            None => (random(ID_LEN), random(SECRET_LEN)),
        };
        let mut usages: Vec<String> = Vec::new();
        for u in args
            .usages
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
        {
            if !tokens::USAGES.contains(&u) {
                bail!(
                    "unknown token usage {u:?}: use {}",
                    tokens::USAGES.join(" or ")
                );
            }
            if !usages.iter().any(|x| x == u) {
                usages.push(u.to_string());
            }
        }
        let authenticates = usages.iter().any(|u| u == "authentication");
        let default = [DEFAULT_GROUP.to_string()];
        let asked = match &args.groups {
            Some(g) => g.as_slice(),
            None if authenticates => &default,
            None => &[],
        };
        let mut groups: Vec<String> = Vec::new();
        for g in asked.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
            if !is_bootstrap_group(g) {
                bail!(
                    "invalid group {g:?}: extra groups are {}<lowercase letters, digits, ':' and '-'>",
                    tokens::GROUP_PREFIX
                );
            }
            if !groups.iter().any(|x| x == g) {
                groups.push(g.to_string());
            }
        }
        if !groups.is_empty() && !authenticates {
            bail!("--groups applies to tokens used for authentication: add it to --usages");
        }
        let expires = match args.ttl.0 {
            None => None,
            Some(d) => Some(
                now + chrono::Duration::from_std(d)
                    .ok()
                    .filter(|d| *d < chrono::Duration::days(365 * 100))
                    .context("--ttl is too long: use 0 for a token that never expires")?,
            ),
        };
        Ok(NewToken {
            id,
            secret,
            expires,
            usages,
            description: args.description.clone().filter(|d| !d.is_empty()),
            groups,
        })
    }

    /// Its Secret, in upstream's format.
    fn secret(&self) -> Secret {
        let mut data: BTreeMap<String, String> = BTreeMap::from([
            (tokens::ID_KEY.to_string(), self.id.clone()),
            (tokens::SECRET_KEY.to_string(), self.secret.clone()),
        ]);
        if let Some(t) = self.expires {
            data.insert(
                tokens::EXPIRATION_KEY.into(),
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        for u in &self.usages {
            data.insert(format!("{}{u}", tokens::USAGE_PREFIX), "true".into());
        }
        if let Some(d) = &self.description {
            data.insert(tokens::DESCRIPTION_KEY.into(), d.clone());
        }
        if !self.groups.is_empty() {
            data.insert(tokens::GROUPS_KEY.into(), self.groups.join(","));
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(format!("{}{}", tokens::SECRET_PREFIX, self.id)),
                namespace: Some(tokens::NAMESPACE.into()),
                ..Default::default()
            },
            type_: Some(tokens::SECRET_TYPE.into()),
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        }
    }
}

/// Upstream's `^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$`.
fn is_bootstrap_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix(tokens::GROUP_PREFIX) else {
        return false;
    };
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !rest.is_empty()
        && rest.len() <= 256
        && rest.bytes().all(|b| ok(b) || b == b':' || b == b'-')
        && rest.bytes().last().is_some_and(ok)
}

fn random(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// The id a `skiff token delete` argument names.
fn id_of(arg: &str) -> anyhow::Result<String> {
    let t = tokens::secret_part(arg);
    if let Some((id, _)) = tokens::split_bootstrap(t) {
        return Ok(id.to_string());
    }
    if tokens::is_token_id(t) {
        return Ok(t.to_string());
    }
    bail!("{arg:?} is not a bootstrap token: give its id (6 characters of [a-z0-9]), <id>.<secret>, or the join token `skiff token create` printed (the server's own token is not deleted this way: it is <data-dir>/server/token)")
}

/// Go's `duration.ShortHumanDuration`, as kubeadm's TTL column shows it.
fn short_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 60 {
        return format!("{secs}s");
    }
    let mins = d.num_minutes();
    if mins < 60 {
        return format!("{mins}m");
    }
    let hours = d.num_hours();
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// `kubeadm token list`'s table; the TOKEN column shows the id alone (the
/// secret stays in the Secret, as `k3s token list` keeps it).
fn table(secrets: &[Secret], now: chrono::DateTime<chrono::Utc>) -> String {
    let none = |s: Option<String>| s.filter(|s| !s.is_empty()).unwrap_or("<none>".into());
    let mut rows: Vec<[String; 6]> = secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some(tokens::SECRET_TYPE))
        .filter_map(|s| {
            let id = tokens::data(s, tokens::ID_KEY).or_else(|| {
                s.metadata
                    .name
                    .as_deref()?
                    .strip_prefix(tokens::SECRET_PREFIX)
                    .map(str::to_string)
            })?;
            let (ttl, expires) = match Expiry::of(s) {
                Expiry::Never => ("<forever>".into(), "<never>".into()),
                Expiry::At(t) => (
                    short_duration(t - now),
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                Expiry::Unreadable => ("<invalid>".into(), "<invalid>".into()),
            };
            let usages: Vec<&str> = tokens::USAGES
                .iter()
                .copied()
                .filter(|u| {
                    tokens::data(s, &format!("{}{u}", tokens::USAGE_PREFIX)).as_deref()
                        == Some("true")
                })
                .collect();
            Some([
                id,
                ttl,
                expires,
                none(Some(usages.join(","))),
                none(tokens::data(s, tokens::DESCRIPTION_KEY)),
                none(tokens::data(s, tokens::GROUPS_KEY)),
            ])
        })
        .collect();
    rows.sort();
    let mut table = super::util::listing([
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA GROUPS",
    ]);
    for r in rows {
        table.add_row(r);
    }
    super::util::listing_text(&table)
}

pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cmd))
}

async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(args) => {
            let new = NewToken::from_args(&args, chrono::Utc::now())?;
            let server = Server::connect(&args.conn).await?;
            // The hash of the CA exactly as /cacerts serves it: what the
            // agent compares before it trusts the server.
            let ca = server.get_text(crate::server::join::CACERTS_PATH).await?;
            let secrets = server.secrets();
            match secrets.create(&PostParams::default(), &new.secret()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => bail!(
                    "a bootstrap token with id {:?} already exists: give another, or `skiff token delete {}` first",
                    new.id,
                    new.id
                ),
                Err(e) => return Err(server.refused(e)),
            }
            println!(
                "K10{}::{}.{}",
                crate::server::pki::ca_hash(&ca),
                new.id,
                new.secret
            );
            Ok(())
        }
        TokenCommand::List(conn) => {
            let server = Server::connect(&conn).await?;
            let listed = server
                .secrets()
                .list(&ListParams::default().fields(&format!("type={}", tokens::SECRET_TYPE)))
                .await
                .map_err(|e| server.refused(e))?;
            print!("{}", table(&listed.items, chrono::Utc::now()));
            Ok(())
        }
        TokenCommand::Delete(args) => {
            let ids = args
                .tokens
                .iter()
                .map(|t| id_of(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let server = Server::connect(&args.conn).await?;
            let secrets = server.secrets();
            for id in ids {
                let name = format!("{}{id}", tokens::SECRET_PREFIX);
                match secrets.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => println!("bootstrap token {id:?} deleted"),
                    Err(kube::Error::Api(s)) if s.reason == "NotFound" => bail!(
                        "bootstrap token {id:?} not found: `skiff token list` shows the tokens there are"
                    ),
                    Err(e) => return Err(server.refused(e)),
                }
            }
            Ok(())
        }
    }
}

/// The API with the admin kubeconfig (as `skiff secrets-encrypt`).
struct Server {
    client: kube::Client,
    url: http::Uri,
}

impl Server {
    async fn connect(conn: &Conn) -> anyhow::Result<Server> {
        // rustls needs a process-wide provider; ring is the only one built in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // KUBECONFIG may list several files: the first one is the admin's.
        let file = conn
            .kubeconfig
            .to_str()
            .and_then(|s| s.split(':').next())
            .map(PathBuf::from)
            .unwrap_or_else(|| conn.kubeconfig.clone());
        let kubeconfig = kube::config::Kubeconfig::read_from(&file).with_context(|| {
            format!(
                "reading the kubeconfig {} (the server writes it; give another with --kubeconfig)",
                file.display()
            )
        })?;
        let mut config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .with_context(|| format!("reading the kubeconfig {}", file.display()))?;
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(30));
        let url = config.cluster_url.clone();
        let client = kube::Client::try_from(config).context("making the API client")?;
        Ok(Server { client, url })
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), tokens::NAMESPACE)
    }

    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let request = http::Request::get(path)
            .body(Vec::new())
            .context("building the request")?;
        self.client
            .request_text(request)
            .await
            .map_err(|e| self.refused(e))
    }

    /// A refusal's Status as the error's text.
    fn refused(&self, e: kube::Error) -> anyhow::Error {
        match e {
            kube::Error::Api(s) => {
                anyhow::anyhow!("the server at {} refused: {}", self.url, s.message)
            }
            e => anyhow::Error::new(e).context(format!("asking the server at {}", self.url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: TokenCommand,
    }

    fn create(args: &[&str]) -> CreateArgs {
        let mut all = vec!["t", "create"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).map(|c| c.cmd) {
            Ok(TokenCommand::Create(c)) => c,
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn ttls_are_go_durations_and_zero_is_never() {
        assert_eq!(parse_ttl("24h"), Ok(Ttl(Some(Duration::from_secs(86400)))));
        assert_eq!(parse_ttl("1h30m"), Ok(Ttl(Some(Duration::from_secs(5400)))));
        assert_eq!(parse_ttl("1.5s"), Ok(Ttl(Some(Duration::from_secs(2)))));
        assert_eq!(parse_ttl("0"), Ok(Ttl(None)));
        assert_eq!(parse_ttl("0s"), Ok(Ttl(None)));
        assert!(parse_ttl("-1h").is_err());
        assert!(parse_ttl("24").is_err());
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn a_created_token_is_upstreams_secret() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let args = create(&[
            "abcdef.0123456789abcdef",
            "--ttl",
            "2h",
            "--description",
            "for the lab",
        ]);
        let t = NewToken::from_args(&args, now).unwrap();
        let s = t.secret();
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let d = |k: &str| tokens::data(&s, k);
        assert_eq!(d("token-id").as_deref(), Some("abcdef"));
        assert_eq!(d("token-secret").as_deref(), Some("0123456789abcdef"));
        assert_eq!(d("expiration").as_deref(), Some("2026-01-02T05:04:05Z"));
        assert_eq!(d("usage-bootstrap-authentication").as_deref(), Some("true"));
        assert_eq!(d("usage-bootstrap-signing").as_deref(), Some("true"));
        assert_eq!(d("description").as_deref(), Some("for the lab"));
        assert_eq!(d("auth-extra-groups").as_deref(), Some(DEFAULT_GROUP));
        // What the server's join accepts.
        assert_eq!(tokens::bootstrap_problem(&s, "0123456789abcdef", now), None);

        let random = NewToken::from_args(&create(&["--ttl", "0"]), now).unwrap();
        assert!(tokens::split_bootstrap(&format!("{}.{}", random.id, random.secret)).is_some());
        assert_eq!(random.expires, None);
        assert_eq!(tokens::data(&random.secret(), "expiration"), None);
    }

    #[test]
    fn bad_tokens_usages_and_groups_are_refused() {
        let now = chrono::Utc::now();
        let err = |args: &[&str]| {
            NewToken::from_args(&create(args), now)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["ABCDEF.0123456789abcdef"]).contains("not a bootstrap token"));
        assert!(err(&["--usages", "joining"]).contains("unknown token usage"));
        assert!(err(&["--groups", "system:masters"]).contains("invalid group"));
        assert!(err(&["--groups", "system:bootstrappers:x-"]).contains("invalid group"));
        assert!(
            err(&["--usages", "signing", "--groups", DEFAULT_GROUP]).contains("--groups applies")
        );
        let signing = NewToken::from_args(&create(&["--usages", "signing"]), now).unwrap();
        assert!(signing.groups.is_empty());
        assert_eq!(signing.usages, ["signing"]);
        assert_eq!(
            tokens::bootstrap_problem(&signing.secret(), &signing.secret, now),
            Some("not usable for authentication")
        );
        // A full join token names its bootstrap token too.
        let full = format!("K10{}::abcdef.0123456789abcdef", "a".repeat(64));
        assert_eq!(
            NewToken::from_args(&create(&[&full]), now).unwrap().id,
            "abcdef"
        );
    }

    #[test]
    fn delete_takes_an_id_a_token_or_a_join_token() {
        assert_eq!(id_of("abcdef").unwrap(), "abcdef");
        assert_eq!(id_of("abcdef.0123456789abcdef").unwrap(), "abcdef");
        let full = format!("K10{}::abcdef.0123456789abcdef", "a".repeat(64));
        assert_eq!(id_of(&full).unwrap(), "abcdef");
        let server = format!("K10{}::{}", "a".repeat(64), "f".repeat(32));
        assert!(id_of(&server)
            .unwrap_err()
            .to_string()
            .contains("server's own token"));
        assert!(id_of("abc").is_err());
    }

    #[test]
    fn durations_are_short_as_kubeadm_prints_them() {
        let s = chrono::Duration::seconds;
        assert_eq!(short_duration(s(-5)), "<invalid>");
        assert_eq!(short_duration(s(-1)), "0s");
        assert_eq!(short_duration(s(59)), "59s");
        assert_eq!(short_duration(s(3599)), "59m");
        assert_eq!(short_duration(s(86399)), "23h");
        assert_eq!(short_duration(s(86400 * 3)), "3d");
        assert_eq!(short_duration(s(86400 * 800)), "2y");
    }

    #[test]
    fn the_list_shows_kubeadms_columns() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let timed = NewToken::from_args(
            &create(&["abcdef.0123456789abcdef", "--description", "lab"]),
            now,
        )
        .unwrap()
        .secret();
        let forever = NewToken::from_args(
            &create(&[
                "zzzzzz.0123456789abcdef",
                "--ttl",
                "0",
                "--usages",
                "signing",
            ]),
            now,
        )
        .unwrap()
        .secret();
        let text = table(&[forever, timed], now + chrono::Duration::minutes(30));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "TOKEN",
                "TTL",
                "EXPIRES",
                "USAGES",
                "DESCRIPTION",
                "EXTRA",
                "GROUPS"
            ]
        );
        let first: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "abcdef",
                "23h",
                "2026-01-03T03:04:05Z",
                "authentication,signing",
                "lab",
                DEFAULT_GROUP
            ]
        );
        let second: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            second,
            [
                "zzzzzz",
                "<forever>",
                "<never>",
                "signing",
                "<none>",
                "<none>"
            ]
        );
        // The secret is never shown.
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}

//! Commands that move images or credentials across the store's boundary:
//! `push`, `save`, `load`, `login`, `logout`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::images::make_display;
use super::util::{image_store, tokio_runtime};
use crate::runtime::engine::Engine;
use crate::runtime::image::archive::{self, ArchiveFormat};
use crate::runtime::image::credentials::{self, Logins};
use crate::runtime::image::ensure::registry_client;
use crate::runtime::image::push;
use crate::runtime::image::registries::{self, Credentials, RegistriesConfig};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image's name, which says where it goes (host/repository:tag).
    pub image: String,
    /// Credentials and TLS settings per registry.
    #[arg(long, default_value = registries::DEFAULT_PATH)]
    pub registries: PathBuf,
    /// No progress and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// `docker save` layout: manifest.json, repositories, one tar per layer.
    Docker,
    /// OCI image layout (what skopeo's `oci-archive:` reads).
    Oci,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Where to write the tar archive (standard output when not given).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "docker")]
    pub format: FormatArg,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The tar archive to read (docker-archive or OCI layout, detected);
    /// standard input when not given.
    #[arg(long, short)]
    pub input: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port], as written in image names.
    pub registry: String,
    /// The user name (required).
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password from standard input (the only way: a password on
    /// the command line would show in `ps` and shell history).
    #[arg(long)]
    pub password_stdin: bool,
    /// TLS settings (CA files) per registry.
    #[arg(long, default_value = registries::DEFAULT_PATH)]
    pub registries: PathBuf,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    pub registry: String,
}

pub fn push(engine: &Engine, args: PushArgs) -> anyhow::Result<()> {
    let config = RegistriesConfig::load(&args.registries)?;
    let store = image_store(engine)?;
    let client = Arc::new(registry_client(engine.root(), config)?);
    let progress = make_display(args.quiet, true);
    let rt = tokio_runtime()?;
    if !args.quiet {
        println!("Pushing {}", args.image);
    }
    let pushed = rt.block_on(push::push(store, client, &args.image, progress.callback()))?;
    progress.finish();
    if !args.quiet {
        println!(
            "{}: digest: {} ({} uploaded, {} mounted, {} already there)",
            pushed.name, pushed.manifest_digest, pushed.uploaded, pushed.mounted, pushed.existing
        );
    }
    Ok(())
}

pub fn save(engine: &Engine, args: SaveArgs) -> anyhow::Result<()> {
    let store = image_store(engine)?;
    let format = match args.format {
        FormatArg::Docker => ArchiveFormat::Docker,
        FormatArg::Oci => ArchiveFormat::Oci,
    };
    if let Some(output) = &args.output {
        archive::save(store, &args.images, format, output)
            .with_context(|| format!("saving to {}", output.display()))?;
        return Ok(());
    }
    if std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    // The archive is made whole first (save writes a file and renames it
    // into place), in the private root, then copied out.
    let tmp = engine
        .root()
        .join(format!(".save-{}.tar", std::process::id()));
    let saved = archive::save(store, &args.images, format, &tmp)
        .context("saving to standard output")
        .and_then(|()| {
            let mut f = std::fs::File::open(&tmp).with_context(|| tmp.display().to_string())?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut f, &mut out).context("writing to standard output")?;
            std::io::Write::flush(&mut out).context("writing to standard output")?;
            Ok(())
        });
    let _ = std::fs::remove_file(&tmp);
    saved
}

pub fn load(engine: &Engine, args: LoadArgs) -> anyhow::Result<()> {
    let input = match &args.input {
        Some(p) => p.clone(),
        None if std::io::stdin().is_terminal() => {
            anyhow::bail!("requested load from stdin, but stdin is a terminal: use -i or redirect")
        }
        // Read in one pass, as a pipe allows.
        None => PathBuf::from("/dev/stdin"),
    };
    let loaded = archive::load(image_store(engine)?, &input)
        .with_context(|| format!("loading {}", input.display()))?;
    for name in loaded {
        println!("Loaded image: {name}");
    }
    Ok(())
}

pub fn login(root: &Path, args: LoginArgs) -> anyhow::Result<()> {
    let username = match args.username {
        Some(u) => u,
        None => anyhow::bail!("--username is required"),
    };
    if !args.password_stdin {
        anyhow::bail!("give the password on standard input with --password-stdin");
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
    }
    let mut password = String::new();
    stdin
        .lock()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    let credentials = Credentials::Basic { username, password };
    let config = RegistriesConfig::load(&args.registries)?;
    let client = registry_client(root, config)?;
    let ok = tokio_runtime()?.block_on(client.check_login(&args.registry, &credentials))?;
    if !ok {
        anyhow::bail!(
            "{}: the registry refused these credentials (unauthorized)",
            args.registry
        );
    }
    let path = credentials::path(root);
    let mut logins = Logins::load(&path)?;
    logins.set(&args.registry, credentials);
    logins.save(&path)?;
    tracing::info!(registry = %args.registry, file = %path.display(), "saved login");
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(root: &Path, args: LogoutArgs) -> anyhow::Result<()> {
    let path = credentials::path(root);
    let mut logins = Logins::load(&path)?;
    if logins.remove(&args.registry) {
        logins.save(&path)?;
        println!("Removed login credentials for {}", args.registry);
    } else {
        println!("Not logged in to {}", args.registry);
    }
    Ok(())
}

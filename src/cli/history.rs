//! `skiff image history` (and `skiff history`): an image's layers and the
//! steps that made them, newest first, from its config's `history`, as
//! docker prints them.

use clap::Args;
use serde_json::Value;

use super::util::{human_size, image_store};
use crate::runtime::engine::Engine;
use crate::runtime::image::catalog;
use crate::runtime::image::manifest::ImageConfig;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show the whole CREATED BY command and full IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Sizes in bytes and times in RFC3339.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    pub image: String,
}

/// One history entry, oldest first in the config.
struct Step {
    created: Option<String>,
    created_by: String,
    comment: String,
    empty_layer: bool,
}

fn steps(history: Option<&Value>) -> Vec<Step> {
    history
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|h| {
                    let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default();
                    Step {
                        created: h.get("created").and_then(Value::as_str).map(String::from),
                        created_by: s("created_by").to_string(),
                        comment: s("comment").to_string(),
                        empty_layer: h
                            .get("empty_layer")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".into();
    };
    let d = chrono::Utc::now() - t.with_timezone(&chrono::Utc);
    format!("{} ago", super::ps::human_duration(d))
}

pub fn history(engine: &Engine, args: HistoryArgs) -> anyhow::Result<()> {
    let store = image_store(engine)?;
    let meta = store.meta()?;
    let rows = meta.list()?;
    let image = catalog::find(&rows, &args.image)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("No such image: {}", args.image))?;
    let config: ImageConfig = serde_json::from_slice(&store.read_blob(&image.config_digest)?)?;
    let layers = meta.layers(&image.manifest_digest)?;
    let mut steps = steps(config.history.as_ref());
    if steps.is_empty() {
        // No history: one line per layer, as docker shows such images.
        steps = layers
            .iter()
            .map(|_| Step {
                created: config.created.clone(),
                created_by: String::new(),
                comment: String::new(),
                empty_layer: false,
            })
            .collect();
    }
    // Each step that made a layer gets the next layer's size (the
    // compressed size: skiff keeps no per-layer unpacked size).
    let mut sizes = layers.iter().map(|l| l.blob_size);
    let mut lines: Vec<(String, String, u64, String)> = steps
        .iter()
        .map(|s| {
            let size = if s.empty_layer {
                0
            } else {
                sizes.next().unwrap_or(0)
            };
            let created = if args.human {
                ago(s.created.as_deref())
            } else {
                s.created.clone().unwrap_or_default()
            };
            (created, s.created_by.clone(), size, s.comment.clone())
        })
        .collect();
    lines.reverse();
    let hex = image
        .config_digest
        .strip_prefix("sha256:")
        .unwrap_or(&image.config_digest);
    let id = if args.no_trunc {
        image.config_digest.clone()
    } else {
        hex.chars().take(12).collect()
    };
    if args.quiet {
        for i in 0..lines.len() {
            println!("{}", if i == 0 { id.as_str() } else { "<missing>" });
        }
        return Ok(());
    }
    let mut table = super::util::listing(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    for (i, (created, by, size, comment)) in lines.into_iter().enumerate() {
        let by = if !args.no_trunc && by.chars().count() > 45 {
            format!("{}…", by.chars().take(44).collect::<String>())
        } else {
            by
        };
        table.add_row([
            if i == 0 {
                id.clone()
            } else {
                "<missing>".into()
            },
            created,
            by,
            if args.human {
                human_size(size)
            } else {
                size.to_string()
            },
            comment,
        ]);
    }
    print!("{}", super::util::listing_text(&table));
    Ok(())
}

//! The node join token and the static bearer-token file.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::files::{read_optional, write_atomic, PRIVATE};
use super::{Identity, PkiError};

/// User name of the admin line written into a new token file.
pub const ADMIN_TOKEN_USER: &str = "skiff-admin";
/// Group of the admin line written into a new token file.
pub const ADMIN_TOKEN_GROUP: &str = "system:masters";

/// Hex SHA-256 of the CA certificate PEM: what a join token pins.
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(Sha256::digest(ca_pem.as_bytes()))
}

/// Splits a full join token `K10<ca hash>::<secret>` into (CA hash, secret).
pub fn parse_join_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.trim().strip_prefix("K10")?;
    let (hash, secret) = rest.split_once("::")?;
    let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    (hash_ok && !secret.is_empty()).then_some((hash, secret))
}

/// The cluster's secret: the one `given` (`--token`: a bare secret or a
/// full `K10…::secret` token), else the one in the token file at `path`,
/// else a new random one; and whether the file does not hold it yet (then
/// [`keep_cluster_secret`] writes it, once what it is for has worked, so
/// a refused start leaves nothing behind). A `given` secret that is not
/// the file's is refused rather than replacing the token agents and
/// servers already hold.
pub fn cluster_secret(path: &Path, given: Option<&str>) -> Result<(String, bool), PkiError> {
    let given = match given.map(str::trim) {
        Some(t) if t.starts_with("K10") => Some(
            parse_join_token(t)
                .map(|(_, secret)| secret)
                .ok_or_else(|| {
                    PkiError::invalid(
                    path,
                    "--token: malformed join token (want K10<sha256>::<secret> or a bare secret)",
                )
                })?,
        ),
        Some("") => return Err(PkiError::invalid(path, "--token is empty")),
        Some(t) => Some(t),
        None => None,
    };
    if given.is_some_and(|t| t.contains(char::is_whitespace)) {
        return Err(PkiError::invalid(path, "--token contains whitespace"));
    }
    let existing = read_optional(path)?;
    let existing = existing
        .as_deref()
        .map(str::trim)
        .map(|text| parse_join_token(text).map_or(text, |(_, secret)| secret));
    match (existing, given) {
        (Some(have), Some(want)) if !have.is_empty() && have != want => Err(PkiError::invalid(
            path,
            "holds another token than --token: this data directory was started with a \
             different one (agents hold it); give that one, or move the data directory away",
        )),
        (Some(have), _) if !have.is_empty() => Ok((have.to_string(), false)),
        (_, Some(given)) => Ok((given.to_string(), true)),
        (_, None) => Ok((hex::encode(rand::random::<[u8; 16]>()), true)),
    }
}

/// Write the cluster's secret, bare, to the token file at `path` (mode
/// 0600; [`load_or_create_join_token`] completes it once the CA is known).
pub fn keep_cluster_secret(path: &Path, secret: &str) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        super::files::ensure_dir(dir, 0o700)?;
    }
    write_atomic(path, format!("{secret}\n").as_bytes(), PRIVATE)
}

/// The node join token `K10<hex sha256 of the CA PEM>::<secret>` kept at `path`
/// (mode 0600). Created once with a random secret and reused later; a file holding
/// only a bare secret (written by an operator) is accepted and completed. If the
/// CA changed, the secret is kept and the file rewritten with the new hash.
pub fn load_or_create_join_token(path: &Path, ca_pem: &str) -> Result<String, PkiError> {
    let hash = ca_hash(ca_pem);
    let existing = read_optional(path)?;
    let secret = match existing.as_deref().map(str::trim) {
        None => hex::encode(rand::random::<[u8; 16]>()),
        Some(text) => {
            let secret = match parse_join_token(text) {
                Some((old_hash, secret)) => {
                    if old_hash != hash {
                        tracing::warn!(path = %path.display(), "cluster CA changed; updating the join token's CA hash");
                    }
                    secret
                }
                None if text.starts_with("K10") => {
                    return Err(PkiError::invalid(
                        path,
                        "malformed join token (want K10<sha256>::<secret>)",
                    ))
                }
                None => text,
            };
            if secret.is_empty() || secret.contains(char::is_whitespace) {
                return Err(PkiError::invalid(
                    path,
                    "join token secret is empty or contains whitespace",
                ));
            }
            secret.to_string()
        }
    };
    let token = format!("K10{hash}::{secret}");
    if existing.as_deref().map(str::trim) != Some(token.as_str()) {
        if let Some(dir) = path.parent() {
            super::files::ensure_dir(dir, 0o700)?;
        }
        write_atomic(path, format!("{token}\n").as_bytes(), PRIVATE)?;
    }
    Ok(token)
}

struct TokenEntry {
    hash: [u8; 32],
    user: String,
    uid: String,
    groups: Vec<String>,
}

/// Static bearer tokens (kube-apiserver `--token-auth-file` format).
pub struct TokenAuth {
    entries: Vec<TokenEntry>,
    admin_token: Option<String>,
}

impl fmt::Debug for TokenAuth {
    // Never print tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuth")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

impl TokenAuth {
    /// Parses token-file text: one `token,user,uid[,"group1,group2"]` per line
    /// (fields may be double-quoted, `""` escapes a quote); blank lines and lines
    /// starting with `#` are ignored. `source` names the file in errors.
    pub fn parse(text: &str, source: &Path) -> Result<TokenAuth, PkiError> {
        let mut entries: Vec<TokenEntry> = Vec::new();
        let mut admin_token = None;
        let mut admin_from_masters = None;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |problem: String| PkiError::TokenFile {
                path: source.to_path_buf(),
                line: line_no,
                problem,
            };
            let fields = split_csv_line(line).map_err(|p| bad(p.to_string()))?;
            if fields.len() < 3 {
                return Err(bad(format!(
                    "want at least 3 columns (token, user, uid), found {}",
                    fields.len()
                )));
            }
            let (token, user, uid) = (&fields[0], &fields[1], &fields[2]);
            if token.is_empty() {
                return Err(bad("empty token".into()));
            }
            if user.is_empty() {
                return Err(bad("empty user name".into()));
            }
            let groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if entries.iter().any(|e| e.hash == hash) {
                return Err(bad("duplicate token".into()));
            }
            if user == ADMIN_TOKEN_USER && admin_token.is_none() {
                admin_token = Some(token.clone());
            }
            if admin_from_masters.is_none() && groups.iter().any(|g| g == ADMIN_TOKEN_GROUP) {
                admin_from_masters = Some(token.clone());
            }
            entries.push(TokenEntry {
                hash,
                user: user.clone(),
                uid: uid.clone(),
                groups,
            });
        }
        Ok(TokenAuth {
            entries,
            admin_token: admin_token.or(admin_from_masters),
        })
    }

    /// The identity a bearer token stands for. Every entry is compared (in
    /// constant time, over SHA-256 digests) so timing reveals nothing.
    pub fn authenticate(&self, bearer: &str) -> Option<Identity> {
        let probe: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        let mut found: Option<&TokenEntry> = None;
        for entry in &self.entries {
            if ct_eq(&probe, &entry.hash) && found.is_none() {
                found = Some(entry);
            }
        }
        found.map(|e| Identity {
            user: e.user.clone(),
            groups: e.groups.clone(),
        })
    }

    /// The uid column of the line a bearer token matches.
    pub fn uid_of(&self, bearer: &str) -> Option<&str> {
        let probe: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        self.entries.iter().fold(None, |acc, e| {
            if ct_eq(&probe, &e.hash) {
                acc.or(Some(e.uid.as_str()))
            } else {
                acc
            }
        })
    }

    /// The admin token: the first `skiff-admin` line's, else the first token of
    /// a `system:masters` member.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Loads the token file at `path`, creating it (mode 0600) on first start with
/// one admin line: a random 32-byte hex token for `skiff-admin` in `system:masters`.
pub fn load_or_create_token_file(path: &Path) -> Result<TokenAuth, PkiError> {
    if let Some(text) = read_optional(path)? {
        return TokenAuth::parse(&text, path);
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let text = format!("{token},{ADMIN_TOKEN_USER},{ADMIN_TOKEN_USER},\"{ADMIN_TOKEN_GROUP}\"\n");
    if let Some(dir) = path.parent() {
        super::files::ensure_dir(dir, 0o700)?;
    }
    write_atomic(path, text.as_bytes(), PRIVATE)?;
    TokenAuth::parse(&text, path)
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines). Unquoted
/// fields are trimmed.
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("unexpected character after a quoted field"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("quote inside an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

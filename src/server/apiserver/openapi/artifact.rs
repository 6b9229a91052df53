//! The upstream OpenAPI documents compiled into the binary: `upstream.bin`,
//! written by `scripts/gen-openapi.py` from kube-apiserver's published specs
//! (its header names them, with commits and dates). The file is a text
//! header and zstd frames; nothing is decoded until a request asks, and a
//! decoded frame lives only as long as the answer being built from it.

/// The file as committed; `sources()` reads its provenance.
static UPSTREAM: &[u8] = include_bytes!("upstream.bin");

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("the compiled-in OpenAPI data is malformed: {0}")]
    Malformed(&'static str),
    #[error("the compiled-in OpenAPI frame {name} does not decompress: {source}")]
    Decompress {
        name: String,
        source: std::io::Error,
    },
}

const MAGIC: &str = "skiff-openapi 1";

/// The header of the file, and where its frames are.
pub struct Artifact<'a> {
    header: &'a str,
    body: &'a [u8],
}

/// One frame, decompressed: lines of `<key>\t<minified JSON>`.
pub struct Frame {
    text: String,
}

impl Artifact<'static> {
    pub fn builtin() -> Result<Self, ArtifactError> {
        Artifact::parse(UPSTREAM)
    }
}

impl<'a> Artifact<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArtifactError> {
        let end = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or(ArtifactError::Malformed("no end of header"))?;
        let header = std::str::from_utf8(&bytes[..end])
            .map_err(|_| ArtifactError::Malformed("header is not UTF-8"))?;
        if header.lines().next() != Some(MAGIC) {
            return Err(ArtifactError::Malformed("not a skiff-openapi 1 file"));
        }
        Ok(Artifact {
            header,
            body: &bytes[end + 2..],
        })
    }

    /// Where the data came from (`source:` lines).
    #[cfg(test)]
    pub fn sources(&self) -> impl Iterator<Item = &'a str> {
        self.header
            .lines()
            .filter_map(|l| l.strip_prefix("source: "))
    }

    /// `(name, offset, length, raw length)` of each frame.
    fn frames(&self) -> impl Iterator<Item = (&'a str, usize, usize, usize)> {
        self.header.lines().filter_map(|l| {
            let mut f = l.strip_prefix("frame ")?.split(' ');
            let name = f.next()?;
            let off = f.next()?.parse().ok()?;
            let len = f.next()?.parse().ok()?;
            let raw = f.next()?.parse().ok()?;
            Some((name, off, len, raw))
        })
    }

    /// Decompress one frame; `None` if there is none of that name.
    pub fn frame(&self, name: &str) -> Result<Option<Frame>, ArtifactError> {
        let Some((_, off, len, raw)) = self.frames().find(|(n, ..)| *n == name) else {
            return Ok(None);
        };
        let packed = off
            .checked_add(len)
            .and_then(|end| self.body.get(off..end))
            .ok_or(ArtifactError::Malformed("frame beyond the end of the file"))?;
        let bytes =
            zstd::bulk::decompress(packed, raw).map_err(|source| ArtifactError::Decompress {
                name: name.to_string(),
                source,
            })?;
        let text =
            String::from_utf8(bytes).map_err(|_| ArtifactError::Malformed("frame is not UTF-8"))?;
        Ok(Some(Frame { text }))
    }
}

impl Frame {
    /// Each line's key and JSON text, in the file's order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.text.lines().filter_map(|l| l.split_once('\t'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_file_names_its_sources_and_decodes() {
        let a = Artifact::builtin().unwrap();
        let sources: Vec<_> = a.sources().collect();
        assert!(
            sources.iter().any(|s| s.contains("swagger.json")),
            "{sources:?}"
        );
        assert!(
            sources.iter().any(|s| s.contains("openapi-spec/v3")),
            "{sources:?}"
        );
        let apps = a.frame("paths:apis/apps/v1").unwrap().unwrap();
        for form in ["v3", "v2"] {
            let key = format!("{form} /apis/apps/v1/namespaces/{{namespace}}/deployments/{{name}}");
            assert!(apps.entries().any(|(k, _)| k == key), "{key}");
        }
        assert!(a.frame("paths:apis/nope/v1").unwrap().is_none());
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(Artifact::parse(b"nothing").is_err());
        assert!(Artifact::parse(b"other 1\n\n").is_err());
        let a = Artifact::parse(b"skiff-openapi 1\nframe x 0 10 10\n\nabc").unwrap();
        assert!(matches!(a.frame("x"), Err(ArtifactError::Malformed(_))));
    }
}

// TEMPORARY stand-in, replaced by the real unpacker
// (src/runtime/image/unpack/ from the `unpack` worktree). Same signatures as
// the agreed API; the body is a plain `tar::Archive::unpack`, which does NOT
// handle whiteouts and must not ship. Delete this file at merge.

use std::io::Read;
use std::path::Path;

pub struct UnpackOptions {
    pub size_limit: Option<u64>,
    pub preserve_ownership: bool,
}

#[derive(Debug, Default)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unsupported layer media type {0:?}")]
    MediaType(String),
    #[error("layer I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub fn decompress<'a, R: Read + 'a>(
    r: R,
    media_type: &str,
) -> Result<Box<dyn Read + 'a>, UnpackError> {
    if media_type.ends_with("gzip") {
        Ok(Box::new(flate2::read::GzDecoder::new(r)))
    } else if media_type.ends_with("zstd") {
        Ok(Box::new(zstd::stream::read::Decoder::new(r)?))
    } else if media_type.ends_with(".tar") {
        Ok(Box::new(r))
    } else {
        Err(UnpackError::MediaType(media_type.to_string()))
    }
}

pub fn unpack_layer<R: Read>(
    tar: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(opts.preserve_ownership);
    archive.unpack(dest)?;
    Ok(UnpackStats::default())
}

pub fn sync_dir(dest: &Path) -> Result<(), UnpackError> {
    std::fs::File::open(dest)?.sync_all()?;
    Ok(())
}

//! Unpacking one layer (tar, gzip or not) over a root folder, as OCI's layer rules say: whiteouts
//! (`.wh.NAME` removes NAME from the layers below, `.wh..wh..opq` empties its folder of them), and
//! nothing unsafe: no absolute paths or `..`, nothing written through a link, no hard link leaving
//! the root; device nodes and FIFOs are skipped, never made.

use crate::{OciError, io};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

fn unsafe_entry(entry: &Path, why: &str) -> OciError {
    OciError::Unsafe { entry: entry.display().to_string(), why: why.to_string() }
}

/// The entry's path made relative and normal, or why it may not be unpacked.
fn clean(entry: &Path) -> Result<PathBuf, OciError> {
    let mut out = PathBuf::new();
    for c in entry.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(entry, "it climbs out with `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(entry, "an absolute path"));
            }
        }
    }
    Ok(out)
}

/// Refuses a path whose parent folders (inside `root`) include a link: writing there would land
/// wherever the link points.
fn no_link_on_the_way(root: &Path, rel: &Path, entry: &Path) -> Result<(), OciError> {
    let mut at = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            at.push(c);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(unsafe_entry(entry, "it would be written through a link"));
            }
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    }
}

/// Unpacks the layer read from `blob` (gzip-compressed when `gzip`) over `root`; files keep the
/// owners the image gives them when this process may set owners (as root, like Docker).
pub fn unpack_layer(blob: impl Read, gzip: bool, root: &Path) -> Result<(), OciError> {
    // SAFETY: geteuid has no preconditions.
    unpack(blob, gzip, root, unsafe { libc::geteuid() } == 0)
}

/// Unpacks an image archive (OCI or Docker) into `root` with the same checks, owned by this process.
pub fn unpack_archive(blob: impl Read, root: &Path) -> Result<(), OciError> {
    unpack(blob, false, root, false)
}

fn unpack(blob: impl Read, gzip: bool, root: &Path, owners: bool) -> Result<(), OciError> {
    let reader: Box<dyn Read> = if gzip { Box::new(flate2::read::GzDecoder::new(blob)) } else { Box::new(blob) };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_ownerships(owners);
    archive.set_preserve_permissions(true);
    // What this layer made: an opaque whiteout hides only what the layers below left.
    let mut made: HashSet<PathBuf> = HashSet::new();
    let entries = archive.entries().map_err(|e| io(root, e))?;
    for entry in entries {
        let mut e = entry.map_err(|e| io(root, e))?;
        let raw = e.path().map_err(|e| io(root, e))?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue; // the root itself
        }
        no_link_on_the_way(root, &rel, &raw)?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let dest = root.join(&rel);
        if name == OPAQUE {
            let dir = dest.parent().unwrap_or(root);
            for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = child.path();
                if !made.contains(&p) {
                    remove_any(&p).map_err(|e| io(&p, e))?;
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            // `.wh..` or `.wh...` would name the folder itself or its parent.
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(unsafe_entry(&raw, "a whiteout naming `.` or `..` (outside its folder)"));
            }
            let target = dest.with_file_name(hidden);
            remove_any(&target).map_err(|e| io(&target, e))?;
            continue;
        }
        let kind = e.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if std::fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
                    remove_any(&dest).map_err(|e| io(&dest, e))?;
                }
                std::fs::create_dir_all(&dest).map_err(|e| io(&dest, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Symlink => {
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
                }
                remove_any(&dest).map_err(|e| io(&dest, e))?;
                // `unpack` writes this one entry at `dest` (a link is made, never followed).
                e.unpack(&dest).map_err(|e| io(&dest, e))?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(|e| io(root, e))?
                    .ok_or_else(|| unsafe_entry(&raw, "a hard link without a target"))?;
                let target = root.join(clean(&target)?);
                no_link_on_the_way(root, target.strip_prefix(root).unwrap_or(&target), &raw)?;
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
                }
                remove_any(&dest).map_err(|e| io(&dest, e))?;
                std::fs::hard_link(&target, &dest).map_err(|e| io(&dest, e))?;
            }
            // Never made: a container gets its own /dev (images made from a root filesystem
            // often carry /dev/console and the like), and a FIFO is no file an app ships.
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => continue,
            // Extended headers and the like carry no file.
            _ => continue,
        }
        made.insert(dest);
    }
    Ok(())
}

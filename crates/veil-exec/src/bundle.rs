//! iApp bundles: a folder with an `iapp.toml`, packed as a canonical zip (sorted paths, fixed
//! timestamps, stored), so its sha256 (the app's checksum) and measurement depend only on content.
//!
//! What goes in: the files `include` lists (plus `iapp.toml`), or else every file of the folder
//! except hidden ones (names starting with `.`, such as `.git` or `veil app test`'s `.veil-test`).
//! `build` is a shell command `veil app test` and `veil app deploy` run in the folder before packing
//! (e.g. compiling to WebAssembly); workers never run it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Cursor, Read, Write};
use std::path::{Component, Path, PathBuf};

pub const MANIFEST: &str = "iapp.toml";
/// Limits on bundles from outside.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;
pub const MAX_FILES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} has no iapp.toml: create one with name, runtime (process or wasm) and entrypoint")]
    NoManifest(String),
    #[error("iapp.toml: {0}")]
    Manifest(String),
    #[error("unsafe archive entry `{0}` (absolute path, `..`, or link): refused")]
    Unsafe(String),
    #[error("bundle too large: {0}")]
    TooLarge(String),
    #[error("bundle io: {0}")]
    Io(#[from] std::io::Error),
    #[error("bundle archive: {0}")]
    Zip(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Process,
    Wasm,
}

/// `iapp.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub runtime: RuntimeKind,
    /// Path of the program inside the bundle (a script for an interpreter, an executable, a .wasm).
    pub entrypoint: String,
    /// For scripts: the interpreter to run them with (e.g. `python3`, `node`).
    #[serde(default)]
    pub interpreter: Option<String>,
    /// A shell command that produces the bundle's files (run by `veil app test|deploy`, not workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The files and folders to pack (default: every file that is not hidden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, BundleError> {
        let m: Manifest = toml::from_str(text).map_err(|e| BundleError::Manifest(e.to_string()))?;
        if m.name.trim().is_empty() {
            return Err(BundleError::Manifest("`name` is empty".into()));
        }
        safe_relative(&m.entrypoint).map_err(|_| {
            BundleError::Manifest(format!("entrypoint `{}` must be a path inside the bundle", m.entrypoint))
        })?;
        for inc in m.include.iter().flatten() {
            safe_relative(inc).map_err(|_| {
                BundleError::Manifest(format!("include `{inc}` must be a path inside the project folder"))
            })?;
        }
        if let Some(i) = &m.interpreter
            && (i.is_empty() || i.contains(char::is_whitespace))
        {
            return Err(BundleError::Manifest(format!("interpreter `{i}` must be one program name or path")));
        }
        Ok(m)
    }
}

/// A packed bundle: its canonical bytes and manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

fn safe_relative(p: &str) -> Result<PathBuf, BundleError> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if ok { Ok(path.to_path_buf()) } else { Err(BundleError::Unsafe(p.to_string())) }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BundleError> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let t = e.file_type()?;
        let p = e.path();
        if t.is_symlink() {
            return Err(BundleError::Unsafe(p.strip_prefix(root).unwrap_or(&p).display().to_string()));
        }
        if t.is_dir() {
            walk(root, &p, out)?;
        } else {
            out.push(p);
        }
        if out.len() > MAX_FILES {
            return Err(BundleError::TooLarge(format!("more than {MAX_FILES} files")));
        }
    }
    Ok(())
}

/// The files `include` names (folders walked), and the manifest.
fn included(dir: &Path, list: &[String]) -> Result<Vec<PathBuf>, BundleError> {
    let mut files = vec![dir.join(MANIFEST)];
    for inc in list {
        let p = dir.join(safe_relative(inc)?);
        let meta = std::fs::symlink_metadata(&p)
            .map_err(|_| BundleError::Manifest(format!("include `{inc}` does not exist (does the build make it?)")))?;
        if meta.file_type().is_symlink() {
            return Err(BundleError::Unsafe(inc.clone()));
        } else if meta.is_dir() {
            walk(dir, &p, &mut files)?;
        } else {
            files.push(p);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

impl Bundle {
    /// Packs `dir` canonically. Symbolic links are refused.
    pub fn pack(dir: &Path) -> Result<Bundle, BundleError> {
        let manifest_text = std::fs::read_to_string(dir.join(MANIFEST))
            .map_err(|_| BundleError::NoManifest(dir.display().to_string()))?;
        let manifest = Manifest::parse(&manifest_text)?;
        if !dir.join(&manifest.entrypoint).is_file() {
            return Err(BundleError::Manifest(format!(
                "entrypoint `{}` is not a file of the bundle",
                manifest.entrypoint
            )));
        }
        let files = match &manifest.include {
            None => {
                let mut files = vec![];
                walk(dir, dir, &mut files)?;
                files
            }
            Some(list) => included(dir, list)?,
        };
        let mut names: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|p| (p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().replace('\\', "/"), p))
            .collect();
        names.sort();
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let mut total = 0u64;
        for (name, path) in names {
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                if std::fs::metadata(&path)?.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 }
            };
            #[cfg(not(unix))]
            let mode = 0o644;
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .last_modified_time(zip::DateTime::default())
                .unix_permissions(mode);
            let data = std::fs::read(&path)?;
            total += data.len() as u64;
            if total > MAX_BUNDLE_BYTES {
                return Err(BundleError::TooLarge(format!("more than {MAX_BUNDLE_BYTES} bytes")));
            }
            zip.start_file(name, opts).map_err(|e| BundleError::Zip(e.to_string()))?;
            zip.write_all(&data)?;
        }
        let bytes = zip.finish().map_err(|e| BundleError::Zip(e.to_string()))?.into_inner();
        Ok(Bundle { bytes, manifest })
    }

    /// Reads a packed bundle from untrusted bytes (manifest checked, nothing extracted yet).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Bundle, BundleError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge(format!("{} bytes", bytes.len())));
        }
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes)).map_err(|e| BundleError::Zip(e.to_string()))?;
        let mut text = String::new();
        z.by_name(MANIFEST).map_err(|_| BundleError::NoManifest("the bundle".into()))?.read_to_string(&mut text)?;
        let manifest = Manifest::parse(&text)?;
        Ok(Bundle { bytes, manifest })
    }

    /// sha256 of the bundle bytes: the app's checksum and its blob id.
    pub fn checksum(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }

    /// What an enclave measures: the bundle and how it is run.
    pub fn measurement(&self) -> [u8; 32] {
        let m = &self.manifest;
        let mut h = Sha256::new();
        h.update(b"veil-measurement-v1\0");
        h.update(self.checksum());
        h.update(serde_json::to_vec(&(m.runtime, &m.entrypoint, &m.interpreter)).unwrap_or_default());
        h.finalize().into()
    }

    /// Extracts into `dest` (which must not exist or be empty), refusing unsafe entries.
    pub fn unpack(&self, dest: &Path) -> Result<(), BundleError> {
        let mut z = zip::ZipArchive::new(Cursor::new(&self.bytes)).map_err(|e| BundleError::Zip(e.to_string()))?;
        if z.len() > MAX_FILES {
            return Err(BundleError::TooLarge(format!("{} entries", z.len())));
        }
        std::fs::create_dir_all(dest)?;
        let mut total = 0u64;
        for i in 0..z.len() {
            let mut f = z.by_index(i).map_err(|e| BundleError::Zip(e.to_string()))?;
            let name = f.name().to_string();
            let rel = safe_relative(name.trim_end_matches('/'))?;
            if f.is_symlink() {
                return Err(BundleError::Unsafe(name));
            }
            let out = dest.join(rel);
            if f.is_dir() {
                std::fs::create_dir_all(&out)?;
                continue;
            }
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            total += f.size();
            if total > MAX_BUNDLE_BYTES {
                return Err(BundleError::TooLarge(format!("more than {MAX_BUNDLE_BYTES} bytes unpacked")));
            }
            let mut w = std::fs::File::create(&out)?;
            std::io::copy(&mut (&mut f).take(MAX_BUNDLE_BYTES), &mut w)?;
            #[cfg(unix)]
            if let Some(mode) = f.unix_mode() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode & 0o755))?;
            }
        }
        Ok(())
    }
}

//! A worker's image cache: verified images kept as OCI layouts by manifest digest, each unpacked
//! once into a read-only root filesystem that every task of the image shares (tasks write into
//! their own upper layer), within a size limit: the least recently used images that no task is
//! using go first.
//!
//! Folders appear atomically (unpacked beside, then renamed), so concurrent tasks and a crash
//! mid-unpack never see half an image.

use crate::layout::Image;
use crate::{OciError, io};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct ImageStore {
    root: PathBuf,
    limit: u64,
    /// Manifest hex → tasks using its root filesystem now.
    in_use: Mutex<HashMap<String, usize>>,
}

/// A root filesystem in use: the store will not evict it while this lives.
pub struct RootfsLease {
    store: Arc<ImageStore>,
    hex: String,
    pub path: PathBuf,
    /// Whether this lease unpacked the image (false: it was already there).
    pub unpacked_now: bool,
}

impl Drop for RootfsLease {
    fn drop(&mut self) {
        let mut m = self.store.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.hex) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.hex);
            }
        }
    }
}

fn hex_of(digest: &str) -> Result<String, OciError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| OciError::Malformed(format!("`{digest}` is not a sha256 digest")))
}

/// Bytes under a folder (files and links as stored), without following links.
pub fn folder_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else { return 0 };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| folder_size(&e.path())).sum()
}

fn touch(p: &Path) {
    let _ = std::fs::write(p, b"");
}

impl ImageStore {
    /// A store at `root` keeping at most about `limit` bytes of layouts and unpacked images.
    pub fn open(root: &Path, limit: u64) -> Result<Arc<ImageStore>, OciError> {
        for sub in ["layouts", "rootfs", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
        }
        // Whatever a crash left half-done.
        let tmp = root.join("tmp");
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
        Ok(Arc::new(ImageStore { root: root.to_path_buf(), limit, in_use: Mutex::new(HashMap::new()) }))
    }

    /// A fresh scratch folder (removed by the caller or at the next open).
    pub fn scratch(&self) -> Result<PathBuf, OciError> {
        let d = self.root.join("tmp").join(format!("{:016x}", rand_u64()));
        std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
        Ok(d)
    }

    fn layout_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layouts").join(hex)
    }

    /// The kept image with this manifest digest, if any.
    pub fn get(&self, digest: &str) -> Option<Image> {
        let dir = self.layout_dir(&hex_of(digest).ok()?);
        crate::read_layout(&dir, None).ok().filter(|i| i.manifest_digest == digest)
    }

    /// Keeps `image` (copied out of wherever it was read, every blob checked on the way).
    pub fn keep(&self, image: &Image) -> Result<Image, OciError> {
        let hex = hex_of(&image.manifest_digest)?;
        if let Some(kept) = self.get(&image.manifest_digest) {
            return Ok(kept);
        }
        let tmp = self.scratch()?;
        crate::write::copy_image(image, &tmp)?;
        let dir = self.layout_dir(&hex);
        if std::fs::rename(&tmp, &dir).is_err() && !dir.is_dir() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io(&dir, "cannot keep the image"));
        }
        let _ = std::fs::remove_dir_all(&tmp);
        self.get(&image.manifest_digest).ok_or_else(|| OciError::Malformed("the kept image cannot be read".into()))
    }

    /// The image's root filesystem, unpacked once (layers verified, then applied bottom first).
    pub fn rootfs(self: &Arc<Self>, image: &Image) -> Result<RootfsLease, OciError> {
        let hex = hex_of(&image.manifest_digest)?;
        *self.in_use.lock().unwrap_or_else(|p| p.into_inner()).entry(hex.clone()).or_default() += 1;
        let lease = |path: PathBuf, unpacked_now: bool| RootfsLease {
            store: self.clone(),
            hex: hex.clone(),
            path,
            unpacked_now,
        };
        let dir = self.root.join("rootfs").join(&hex);
        let done = dir.join("rootfs");
        if done.is_dir() {
            touch(&dir.join("used"));
            return Ok(lease(done, false));
        }
        // From here the lease's drop releases the count if unpacking fails.
        let mut l = lease(done.clone(), true);
        let tmp = self.scratch()?;
        let fs = tmp.join("rootfs");
        std::fs::create_dir_all(&fs).map_err(|e| io(&fs, e))?;
        for layer in &image.layers {
            let path = image.verify_blob(layer)?;
            let gzip = crate::write::is_gzip(&path)?;
            if layer.media_type.contains("zstd") {
                return Err(OciError::Malformed(
                    "zstd-compressed layers are not supported: use gzip or plain tar".into(),
                ));
            }
            let f = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            crate::unpack_layer(std::io::BufReader::new(f), gzip, &fs)?;
        }
        let size = folder_size(&fs);
        std::fs::write(tmp.join("size"), size.to_string()).map_err(|e| io(&tmp, e))?;
        touch(&tmp.join("used"));
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !done.is_dir() {
                return Err(io(&dir, "cannot place the unpacked image"));
            }
            l.unpacked_now = false;
            return Ok(l);
        }
        self.evict();
        Ok(l)
    }

    /// Removes least recently used images nobody uses until the store fits its limit.
    pub fn evict(&self) {
        let mut entries = vec![];
        let mut total = 0u64;
        for e in std::fs::read_dir(self.root.join("rootfs")).into_iter().flatten().flatten() {
            let hex = e.file_name().to_string_lossy().to_string();
            let size: u64 =
                std::fs::read_to_string(e.path().join("size")).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            let layout = folder_size(&self.layout_dir(&hex));
            let used = std::fs::metadata(e.path().join("used")).and_then(|m| m.modified()).ok();
            total += size + layout;
            entries.push((used, hex, size + layout));
        }
        if total <= self.limit {
            return;
        }
        entries.sort();
        let busy = self.in_use.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (_, hex, size) in entries {
            if total <= self.limit {
                break;
            }
            if busy.contains_key(&hex) {
                continue;
            }
            // Renamed away first: a task never sees half a removed image.
            let gone = self.root.join("tmp").join(format!("evict-{hex}"));
            if std::fs::rename(self.root.join("rootfs").join(&hex), &gone).is_ok() {
                let _ = std::fs::remove_dir_all(&gone);
                let _ = std::fs::remove_dir_all(self.layout_dir(&hex));
                total = total.saturating_sub(size);
            }
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

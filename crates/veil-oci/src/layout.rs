//! Reading an OCI image layout (`oci:DIR[:TAG]`): `index.json` → the manifest (by tag, or the only
//! one) → its config and layers. Every blob read is checked against its digest; the manifest's digest
//! is what an app's on-chain checksum names.

use crate::{OciError, io, sha256_digest};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest manifest, index or config read.
const MAX_JSON: u64 = 4 << 20;
/// Most layers an image may have.
const MAX_LAYERS: usize = 256;
const TAG_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// What the image says about how to run it (its config's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: ImageConfig,
}

/// An image read from a layout: its manifest digest, how to run it, and its layers (bottom first).
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: String,
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
    /// The manifest's and the config's descriptors (the manifest's is what an app's checksum names).
    pub manifest: Descriptor,
    pub config_blob: Descriptor,
    root: PathBuf,
}

impl Image {
    /// The layout folder the image was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every blob of the image: manifest, config, layers.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut all = vec![self.manifest.clone(), self.config_blob.clone()];
        all.extend(self.layers.iter().cloned());
        all
    }

    /// The manifest digest as 32 bytes (an app's checksum).
    pub fn checksum(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let _ = hex::decode_to_slice(self.manifest_digest.trim_start_matches("sha256:"), &mut out);
        out
    }

    /// Bytes of every layer (what unpacking reads).
    pub fn layers_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// Where a layer's blob is in the layout (checked against its digest by [`Image::verify_blob`]).
    pub fn blob_path(&self, d: &Descriptor) -> Result<PathBuf, OciError> {
        blob_path(&self.root, &d.digest)
    }

    /// Checks a blob's bytes against its descriptor (digest and size), reading the file once.
    pub fn verify_blob(&self, d: &Descriptor) -> Result<PathBuf, OciError> {
        let path = self.blob_path(d)?;
        let (actual, n) = crate::write::file_digest(&path)?;
        if actual != d.digest || n != d.size {
            return Err(OciError::Digest { expected: d.digest.clone(), actual });
        }
        Ok(path)
    }
}

fn blob_path(root: &Path, digest: &str) -> Result<PathBuf, OciError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| OciError::Malformed(format!("`{digest}` is not a sha256 digest")))?;
    Ok(root.join("blobs").join("sha256").join(hex))
}

/// Reads a small JSON blob, checked against its digest.
fn read_json_blob<T: serde::de::DeserializeOwned>(root: &Path, d: &Descriptor, what: &str) -> Result<T, OciError> {
    if d.size > MAX_JSON {
        return Err(OciError::Malformed(format!("the {what} is {} bytes, at most {MAX_JSON}", d.size)));
    }
    let path = blob_path(root, &d.digest)?;
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let actual = sha256_digest(&bytes);
    if actual != d.digest {
        return Err(OciError::Digest { expected: d.digest.clone(), actual });
    }
    serde_json::from_slice(&bytes).map_err(|e| OciError::Malformed(format!("the {what}: {e}")))
}

/// Reads the image tagged `tag` (or the layout's only image) from the OCI layout at `root`.
pub fn read_layout(root: &Path, tag: Option<&str>) -> Result<Image, OciError> {
    let marker = root.join("oci-layout");
    if !marker.is_file() {
        return Err(OciError::Malformed(format!("{} has no oci-layout file: not an OCI image layout", root.display())));
    }
    let index_path = root.join("index.json");
    let text = std::fs::read(&index_path).map_err(|e| io(&index_path, e))?;
    let index: Index = serde_json::from_slice(&text).map_err(|e| OciError::Malformed(format!("index.json: {e}")))?;
    let chosen: Vec<&Descriptor> = match tag {
        Some(t) => index
            .manifests
            .iter()
            .filter(|m| m.annotations.get(TAG_ANNOTATION).map(String::as_str) == Some(t))
            .collect(),
        None => index.manifests.iter().collect(),
    };
    let manifest_desc = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(OciError::Malformed(format!("no image tagged `{}` in {}", tag.unwrap_or(""), root.display())));
        }
        _ => {
            return Err(OciError::Malformed(format!(
                "{} holds several images: name one with oci:DIR:TAG",
                root.display()
            )));
        }
    };
    let manifest: Manifest = read_json_blob(root, manifest_desc, "manifest")?;
    if manifest.layers.len() > MAX_LAYERS {
        return Err(OciError::Malformed(format!("{} layers, at most {MAX_LAYERS}", manifest.layers.len())));
    }
    let config: ConfigFile = read_json_blob(root, &manifest.config, "image config")?;
    Ok(Image {
        manifest_digest: manifest_desc.digest.clone(),
        config: config.config,
        layers: manifest.layers,
        manifest: manifest_desc.clone(),
        config_blob: manifest.config,
        root: root.to_path_buf(),
    })
}

/// Opens a local image: an OCI layout folder as it is; an OCI archive (a tar of a layout) or a
/// Docker archive (`docker save`) unpacked into `scratch` first, with the same path checks as layers.
/// A Docker archive becomes an OCI layout: its config unchanged (so its digest is Docker's image ID),
/// its layers as they are, and a manifest written by [`crate::write::manifest_bytes`].
pub fn open_local(r: &crate::ImageRef, scratch: &Path) -> Result<Image, OciError> {
    let unpack_archive = |path: &Path, name: &str| -> Result<PathBuf, OciError> {
        let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        crate::unpack::unpack_archive(std::io::BufReader::new(f), &dir)?;
        Ok(dir)
    };
    match r {
        crate::ImageRef::OciDir { path, tag } => read_layout(path, tag.as_deref()),
        crate::ImageRef::OciArchive { path } => read_layout(&unpack_archive(path, "oci-archive")?, None),
        crate::ImageRef::DockerArchive { path } => {
            let dir = unpack_archive(path, "docker-archive")?;
            // Docker 25+ writes an OCI layout inside its archives: use it as it is.
            if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
                return read_layout(&dir, None);
            }
            docker_to_layout(&dir, &scratch.join("layout"))
        }
        crate::ImageRef::Registry { .. } => {
            Err(OciError::Malformed("a registry reference is pulled, not opened locally".into()))
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    layers: Vec<String>,
}

/// A `docker save` archive, unpacked at `dir`, rewritten as an OCI layout at `out`.
fn docker_to_layout(dir: &Path, out: &Path) -> Result<Image, OciError> {
    let listing = dir.join("manifest.json");
    let text = std::fs::read(&listing)
        .map_err(|_| OciError::Malformed("a Docker archive has a manifest.json: this one has none".into()))?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&text).map_err(|e| OciError::Malformed(format!("manifest.json: {e}")))?;
    let entry = match entries.as_slice() {
        [one] => one,
        [] => return Err(OciError::Malformed("the Docker archive holds no image".into())),
        _ => return Err(OciError::Malformed("the Docker archive holds several images: save one at a time".into())),
    };
    let real_dir = dir.canonicalize().map_err(|e| io(dir, e))?;
    // Archives link layer files to each other: follow, but never out of the archive.
    let inside = |name: &str| -> Result<PathBuf, OciError> {
        let outside =
            || OciError::Unsafe { entry: name.into(), why: "manifest.json names a file outside the archive".into() };
        let rel = Path::new(name);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(outside());
        }
        let real = dir.join(rel).canonicalize().map_err(|e| io(&dir.join(rel), e))?;
        if !real.starts_with(&real_dir) {
            return Err(outside());
        }
        Ok(real)
    };
    let config_path = inside(&entry.config)?;
    let meta = std::fs::metadata(&config_path).map_err(|e| io(&config_path, e))?;
    if meta.len() > MAX_JSON {
        return Err(OciError::Malformed(format!("the image config is {} bytes, at most {MAX_JSON}", meta.len())));
    }
    let config = std::fs::read(&config_path).map_err(|e| io(&config_path, e))?;
    let layers = entry.layers.iter().map(|l| inside(l)).collect::<Result<Vec<_>, _>>()?;
    crate::write::write_layout(out, &config, &layers)
}

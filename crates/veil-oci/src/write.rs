//! Writing images: an OCI layout from a config and layer files (how a Docker archive becomes an OCI
//! image), and an OCI archive of one image (how a local image travels through Veil's storage).
//!
//! Both are deterministic: the same config and layers always give the same manifest digest, and the
//! same image always gives the same archive bytes.

use crate::layout::{Descriptor, Image};
use crate::{OciError, io, sha256_digest};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYOUT_MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Desc<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Desc<'a>,
    layers: Vec<Desc<'a>>,
}

fn desc(d: &Descriptor) -> Desc<'_> {
    Desc { media_type: &d.media_type, digest: &d.digest, size: d.size }
}

/// The manifest's bytes for `config` and `layers`, as Veil writes them (compact JSON, fixed order).
pub fn manifest_bytes(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    let m = ManifestOut {
        schema_version: 2,
        media_type: MANIFEST_TYPE,
        config: desc(config),
        layers: layers.iter().map(desc).collect(),
    };
    serde_json::to_vec(&m).unwrap_or_default()
}

/// `sha256:` digest and size of a file, read once.
pub fn file_digest(path: &Path) -> Result<(String, u64), OciError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let (mut n, mut buf) = (0u64, vec![0u8; 1 << 16]);
    loop {
        let k = std::io::Read::read(&mut f, &mut buf).map_err(|e| io(path, e))?;
        if k == 0 {
            break;
        }
        sha2::Digest::update(&mut h, &buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{}", hex::encode(sha2::Digest::finalize(h))), n))
}

/// Whether a layer file is gzip-compressed (by its first bytes).
pub fn is_gzip(path: &Path) -> Result<bool, OciError> {
    let mut magic = [0u8; 2];
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let n = std::io::Read::read(&mut f, &mut magic).map_err(|e| io(path, e))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

fn blob_dir(root: &Path) -> PathBuf {
    root.join("blobs").join("sha256")
}

/// Moves (or copies) `from` into the layout's blobs under its digest.
fn put_blob(root: &Path, from: &Path, digest: &str) -> Result<(), OciError> {
    let hex = digest.trim_start_matches("sha256:");
    let to = blob_dir(root).join(hex);
    if to.exists() {
        return Ok(());
    }
    if std::fs::rename(from, &to).is_err() {
        std::fs::copy(from, &to).map_err(|e| io(&to, e))?;
    }
    Ok(())
}

fn put_bytes(root: &Path, bytes: &[u8]) -> Result<Descriptor, OciError> {
    let digest = sha256_digest(bytes);
    let to = blob_dir(root).join(digest.trim_start_matches("sha256:"));
    std::fs::write(&to, bytes).map_err(|e| io(&to, e))?;
    Ok(Descriptor { media_type: String::new(), digest, size: bytes.len() as u64, annotations: Default::default() })
}

/// Writes an OCI layout at `root` holding one image: `config` (its bytes, unchanged) and the layer
/// files (moved in, bottom first; gzip or plain tar, told apart by their bytes). Returns the image.
pub fn write_layout(root: &Path, config: &[u8], layers: &[PathBuf]) -> Result<Image, OciError> {
    std::fs::create_dir_all(blob_dir(root)).map_err(|e| io(root, e))?;
    let mut cfg = put_bytes(root, config)?;
    cfg.media_type = CONFIG_TYPE.into();
    let mut descs = vec![];
    for l in layers {
        let media_type = if is_gzip(l)? { LAYER_TAR_GZIP } else { LAYER_TAR };
        let (digest, size) = file_digest(l)?;
        put_blob(root, l, &digest)?;
        descs.push(Descriptor { media_type: media_type.into(), digest, size, annotations: Default::default() });
    }
    let manifest = manifest_bytes(&cfg, &descs);
    let mut m = put_bytes(root, &manifest)?;
    m.media_type = MANIFEST_TYPE.into();
    write_index(root, &m)?;
    crate::read_layout(root, None)
}

fn write_index(root: &Path, manifest: &Descriptor) -> Result<(), OciError> {
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [desc(manifest)] });
    let p = root.join("index.json");
    std::fs::write(&p, serde_json::to_vec(&index).unwrap_or_default()).map_err(|e| io(&p, e))?;
    let p = root.join("oci-layout");
    std::fs::write(&p, LAYOUT_MARKER).map_err(|e| io(&p, e))
}

/// Copies one image out of its layout into a new layout at `root` holding only it (each blob
/// checked against its digest on the way).
pub fn copy_image(image: &Image, root: &Path) -> Result<Image, OciError> {
    std::fs::create_dir_all(blob_dir(root)).map_err(|e| io(root, e))?;
    for d in image.blobs() {
        let from = image.verify_blob(&d)?;
        let to = blob_dir(root).join(d.digest.trim_start_matches("sha256:"));
        if !to.exists() {
            std::fs::copy(&from, &to).map_err(|e| io(&to, e))?;
        }
    }
    write_index(root, &image.manifest)?;
    crate::read_layout(root, None)
}

/// An OCI archive (a tar of a layout) holding exactly `image`, written to `out`: entries in a fixed
/// order with zeroed times and owners, so the same image always gives the same bytes.
pub fn write_archive(image: &Image, out: impl std::io::Write) -> Result<(), OciError> {
    let mut b = tar::Builder::new(out);
    let err = |e: std::io::Error| OciError::Io { path: "OCI archive".into(), detail: e.to_string() };
    let add = |b: &mut tar::Builder<_>, name: &str, size: u64, data: &mut dyn std::io::Read| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).map_err(err)
    };
    add(&mut b, "oci-layout", LAYOUT_MARKER.len() as u64, &mut &LAYOUT_MARKER[..])?;
    let index = serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "manifests": [desc(&image.manifest)] }))
        .unwrap_or_default();
    add(&mut b, "index.json", index.len() as u64, &mut index.as_slice())?;
    let mut seen = std::collections::BTreeSet::new();
    for d in image.blobs() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let path = image.verify_blob(&d)?;
        let mut f = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
        add(&mut b, &format!("blobs/sha256/{}", d.digest.trim_start_matches("sha256:")), d.size, &mut f)?;
    }
    b.into_inner().map_err(err)?;
    Ok(())
}

/// A file for [`image_from_files`]: its path in the image, its bytes and its mode.
pub struct NewFile<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
    pub mode: u32,
}

/// An OCI layout at `root` holding a one-layer image (gzip when `gzip`) of `files`, run with
/// `entrypoint`: what `FROM scratch` + `COPY` builds. For tests, benchmarks and small tools.
pub fn image_from_files(root: &Path, files: &[NewFile], entrypoint: &[&str], gzip: bool) -> Result<Image, OciError> {
    let err = |e: std::io::Error| io(root, e);
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(f.bytes.len() as u64);
        h.set_mode(f.mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, f.path, f.bytes).map_err(err)?;
    }
    let tar = b.into_inner().map_err(err)?;
    let diff_id = sha256_digest(&tar);
    let layer = if gzip {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, &tar).map_err(err)?;
        z.finish().map_err(err)?
    } else {
        tar
    };
    std::fs::create_dir_all(root).map_err(err)?;
    let file = root.join("layer.tmp");
    std::fs::write(&file, layer).map_err(err)?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": entrypoint },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    write_layout(root, &serde_json::to_vec(&config).unwrap_or_default(), &[file])
}

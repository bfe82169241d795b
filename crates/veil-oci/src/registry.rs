//! A registry client (the Docker Registry HTTP API v2 / OCI distribution spec): pull an image into
//! an OCI layout with every blob checked against its digest while it streams in, resolve a tag to
//! its manifest digest, push a layout's image. Anonymous, token (`WWW-Authenticate: Bearer`) and
//! basic authentication; plain HTTP only for loopback registries (and hosts listed in
//! `VEIL_INSECURE_REGISTRIES`, comma-separated).

use crate::layout::{Descriptor, Image};
use crate::{ImageRef, OciError, io, sha256_digest};
use futures_util::StreamExt;
use std::path::Path;
use std::sync::Mutex;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";
const MAX_MANIFEST: usize = 4 << 20;

/// Credentials for registries that ask for them.
#[derive(Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    /// `VEIL_REGISTRY_USER` and `VEIL_REGISTRY_PASSWORD`, when both are set.
    pub fn from_env() -> Option<Credentials> {
        Some(Credentials {
            username: std::env::var("VEIL_REGISTRY_USER").ok()?,
            password: std::env::var("VEIL_REGISTRY_PASSWORD").ok()?,
        })
    }
}

pub struct Registry {
    http: reqwest::Client,
    creds: Option<Credentials>,
    /// The last bearer token a registry gave (reused until it is refused).
    token: Mutex<Option<String>>,
}

fn err(what: &str, e: impl std::fmt::Display) -> OciError {
    OciError::Registry(format!("{what}: {e}"))
}

/// `https://HOST` or, for loopback and listed hosts, `http://HOST`.
pub fn base_url(registry: &str) -> String {
    let host = if registry == "docker.io" { "registry-1.docker.io" } else { registry };
    let name =
        host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    let listed = std::env::var("VEIL_INSECURE_REGISTRIES")
        .map(|v| v.split(',').any(|h| h.trim() == host || h.trim() == name))
        .unwrap_or(false);
    let loopback = name == "localhost" || name.starts_with("127.") || name == "[::1]";
    format!("{}://{host}", if loopback || listed { "http" } else { "https" })
}

/// `key="value"` pairs of a `WWW-Authenticate` header.
fn challenge_params(h: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let rest = h.split_once(' ').map_or("", |(_, r)| r);
    for part in rest.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            out.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
        }
    }
    out
}

impl Registry {
    pub fn new(http: reqwest::Client, creds: Option<Credentials>) -> Registry {
        Registry { http, creds, token: Mutex::new(None) }
    }

    /// Sends the request `make` builds; on a 401 gets a token (or uses basic credentials) as the
    /// registry's challenge says, and sends it once more.
    async fn send(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, OciError> {
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let first = match &token {
            Some(t) => make().bearer_auth(t),
            None => make(),
        };
        let r = first.send().await.map_err(|e| err(what, e))?;
        if r.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(r);
        }
        let challenge = r
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let retry = if challenge.to_ascii_lowercase().starts_with("bearer") {
            let t = self.fetch_token(&challenge).await?;
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
            make().bearer_auth(t)
        } else if challenge.to_ascii_lowercase().starts_with("basic") {
            let c = self.creds.as_ref().ok_or_else(|| {
                err(what, "the registry asks for credentials: set VEIL_REGISTRY_USER and VEIL_REGISTRY_PASSWORD")
            })?;
            make().basic_auth(&c.username, Some(&c.password))
        } else {
            return Err(err(what, "the registry refused access (401) without saying how to authenticate"));
        };
        let r = retry.send().await.map_err(|e| err(what, e))?;
        if r.status() == reqwest::StatusCode::UNAUTHORIZED {
            let hint = if self.creds.is_some() {
                "the registry refused these credentials"
            } else {
                "the registry wants credentials: set VEIL_REGISTRY_USER and VEIL_REGISTRY_PASSWORD"
            };
            return Err(err(what, hint));
        }
        Ok(r)
    }

    async fn fetch_token(&self, challenge: &str) -> Result<String, OciError> {
        let params = challenge_params(challenge);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| err("token", "the registry's challenge names no realm"))?;
        let query: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "realm").collect();
        let mut req = self.http.get(&realm).query(&query);
        if let Some(c) = &self.creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let r = req.send().await.map_err(|e| err("token", e))?;
        if !r.status().is_success() {
            return Err(err("token", format!("{realm} answered {}", r.status())));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| err("token", e))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| err("token", format!("{realm} gave no token")))
    }

    async fn manifest(&self, base: &str, repo: &str, reference: &str) -> Result<(Vec<u8>, String), OciError> {
        let url = format!("{base}/v2/{repo}/manifests/{reference}");
        let r = self.send(|| self.http.get(&url).header(reqwest::header::ACCEPT, ACCEPT), "manifest").await?;
        if !r.status().is_success() {
            return Err(err("manifest", format!("{url} answered {}", r.status())));
        }
        let media = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if r.content_length().is_some_and(|n| n > MAX_MANIFEST as u64) {
            return Err(err("manifest", "larger than 4 MiB"));
        }
        let bytes = r.bytes().await.map_err(|e| err("manifest", e))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(err("manifest", "larger than 4 MiB"));
        }
        let media = if media.is_empty() || media == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(String::from))
                .unwrap_or_else(|| crate::write::MANIFEST_TYPE.to_string())
        } else {
            media
        };
        Ok((bytes.to_vec(), media))
    }

    /// The image manifest `r` names (an index's linux/amd64 entry, or its only one), with the digest
    /// of what the registry answered first (an index's or the manifest's own).
    async fn image_manifest(&self, r: &ImageRef) -> Result<(Vec<u8>, String, Vec<String>), OciError> {
        let ImageRef::Registry { registry, repository, tag, digest } = r else {
            return Err(OciError::Malformed("not a registry reference".into()));
        };
        let base = base_url(registry);
        let reference = digest.clone().or_else(|| tag.clone()).unwrap_or_else(|| "latest".into());
        let (bytes, media) = self.manifest(&base, repository, &reference).await?;
        let mut digests = vec![sha256_digest(&bytes)];
        if !media.contains("index") && !media.contains("manifest.list") {
            return Ok((bytes, media, digests));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| OciError::Malformed(format!("image index: {e}")))?;
        let list = v["manifests"].as_array().cloned().unwrap_or_default();
        let pick = list
            .iter()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
            .or(if list.len() == 1 { list.first() } else { None })
            .ok_or_else(|| OciError::Malformed("the image index has no linux/amd64 image".into()))?;
        let d = pick["digest"].as_str().ok_or_else(|| OciError::Malformed("an index entry without digest".into()))?;
        let (bytes, media) = self.manifest(&base, repository, d).await?;
        if sha256_digest(&bytes) != d {
            return Err(OciError::Digest { expected: d.into(), actual: sha256_digest(&bytes) });
        }
        digests.push(d.to_string());
        Ok((bytes, media, digests))
    }

    /// The manifest digest(s) `r` names now: the image manifest's, and first the index's when the
    /// reference names a multi-platform image.
    pub async fn resolve(&self, r: &ImageRef) -> Result<Vec<String>, OciError> {
        Ok(self.image_manifest(r).await?.2)
    }

    /// Pulls `r` into a new OCI layout at `dest`, refusing it unless one of its manifest digests is
    /// `expected` (when given) and every blob matches its digest; at most `max_bytes` of layers.
    pub async fn pull(
        &self,
        r: &ImageRef,
        dest: &Path,
        expected: Option<&str>,
        max_bytes: u64,
    ) -> Result<Image, OciError> {
        let ImageRef::Registry { registry, repository, .. } = r else {
            return Err(OciError::Malformed("not a registry reference".into()));
        };
        let (bytes, media, digests) = self.image_manifest(r).await?;
        if let Some(want) = expected
            && !digests.iter().any(|d| d == want)
        {
            return Err(OciError::ChecksumMismatch { expected: want.to_string(), actual: digests.join(" / ") });
        }
        #[derive(serde::Deserialize)]
        struct M {
            config: Descriptor,
            layers: Vec<Descriptor>,
        }
        let m: M = serde_json::from_slice(&bytes).map_err(|e| OciError::Malformed(format!("manifest: {e}")))?;
        let total: u64 = m.layers.iter().map(|l| l.size).sum();
        if total > max_bytes {
            return Err(OciError::Malformed(format!(
                "the image's layers are {total} bytes, more than this worker's {max_bytes}"
            )));
        }
        let blobs = dest.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| io(&blobs, e))?;
        let base = base_url(registry);
        for d in std::iter::once(&m.config).chain(&m.layers) {
            self.fetch_blob(&base, repository, d, &blobs).await?;
        }
        let manifest_digest = sha256_digest(&bytes);
        let hex = manifest_digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), &bytes).map_err(|e| io(&blobs, e))?;
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": [{ "mediaType": media, "digest": manifest_digest, "size": bytes.len() }] });
        std::fs::write(dest.join("index.json"), index.to_string()).map_err(|e| io(dest, e))?;
        std::fs::write(dest.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| io(dest, e))?;
        crate::read_layout(dest, None)
    }

    /// Streams a blob to `blobs/<hex>`, hashing as it comes; refused unless digest and size match.
    async fn fetch_blob(&self, base: &str, repo: &str, d: &Descriptor, blobs: &Path) -> Result<(), OciError> {
        use std::io::Write;
        let hex = d
            .digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64)
            .ok_or_else(|| OciError::Malformed(format!("`{}` is not a sha256 digest", d.digest)))?;
        let path = blobs.join(hex);
        let url = format!("{base}/v2/{repo}/blobs/{}", d.digest);
        let r = self.send(|| self.http.get(&url), "blob").await?;
        if !r.status().is_success() {
            return Err(err("blob", format!("{url} answered {}", r.status())));
        }
        let part = path.with_extension("part");
        let mut f = std::fs::File::create(&part).map_err(|e| io(&part, e))?;
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        let mut n = 0u64;
        let mut stream = r.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| err("blob", e))?;
            n += chunk.len() as u64;
            if n > d.size {
                return Err(OciError::Digest {
                    expected: d.digest.clone(),
                    actual: format!("more than {} bytes", d.size),
                });
            }
            sha2::Digest::update(&mut h, &chunk);
            f.write_all(&chunk).map_err(|e| io(&part, e))?;
        }
        let actual = format!("sha256:{}", hex::encode(sha2::Digest::finalize(h)));
        if actual != d.digest || n != d.size {
            let _ = std::fs::remove_file(&part);
            return Err(OciError::Digest { expected: d.digest.clone(), actual });
        }
        std::fs::rename(&part, &path).map_err(|e| io(&path, e))
    }

    /// Pushes `image` as `r` (blobs the registry lacks, then the manifest); returns its digest.
    pub async fn push(&self, image: &Image, r: &ImageRef) -> Result<String, OciError> {
        let ImageRef::Registry { registry, repository, tag, .. } = r else {
            return Err(OciError::Malformed("push to a registry reference (HOST[:PORT]/NAME:TAG)".into()));
        };
        let base = base_url(registry);
        for d in std::iter::once(&image.config_blob).chain(&image.layers) {
            let url = format!("{base}/v2/{repository}/blobs/{}", d.digest);
            if self.send(|| self.http.head(&url), "push").await?.status().is_success() {
                continue;
            }
            let start = format!("{base}/v2/{repository}/blobs/uploads/");
            let r = self.send(|| self.http.post(&start), "push").await?;
            if r.status() != reqwest::StatusCode::ACCEPTED {
                return Err(err("push", format!("{start} answered {}", r.status())));
            }
            let loc = r
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| err("push", "the registry gave no upload location"))?;
            let loc = if loc.starts_with('/') { format!("{base}{loc}") } else { loc.to_string() };
            let sep = if loc.contains('?') { '&' } else { '?' };
            let put = format!("{loc}{sep}digest={}", d.digest);
            let path = image.verify_blob(d)?;
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            let r = self
                .send(
                    || {
                        self.http
                            .put(&put)
                            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                            .body(bytes.clone())
                    },
                    "push",
                )
                .await?;
            if !r.status().is_success() {
                return Err(err("push", format!("uploading {} answered {}", d.digest, r.status())));
            }
        }
        let manifest = std::fs::read(image.verify_blob(&image.manifest)?).map_err(|e| io(image.root(), e))?;
        let reference = tag.clone().unwrap_or_else(|| image.manifest_digest.clone());
        let url = format!("{base}/v2/{repository}/manifests/{reference}");
        let media = image.manifest.media_type.clone();
        let r = self
            .send(
                || self.http.put(&url).header(reqwest::header::CONTENT_TYPE, media.clone()).body(manifest.clone()),
                "push",
            )
            .await?;
        if !r.status().is_success() {
            return Err(err("push", format!("the manifest: {url} answered {}", r.status())));
        }
        Ok(image.manifest_digest.clone())
    }
}

//! Image references: `HOST[:PORT]/NAME[:TAG]`, `NAME@sha256:…` (registries; Docker's defaults for a
//! bare name), and skopeo's local transports `oci:DIR[:TAG]`, `oci-archive:FILE`, `docker-archive:FILE`.

use crate::OciError;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Registry { registry: String, repository: String, tag: Option<String>, digest: Option<String> },
    OciDir { path: PathBuf, tag: Option<String> },
    OciArchive { path: PathBuf },
    DockerArchive { path: PathBuf },
}

fn bad(s: &str, why: &str) -> OciError {
    OciError::BadReference(s.to_string(), why.to_string())
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, OciError> {
        let path = |p: &str| -> Result<PathBuf, OciError> {
            if p.is_empty() { Err(bad(s, "no path after the transport")) } else { Ok(PathBuf::from(p)) }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            // A tag follows the last `:` unless that colon is part of the path (`/` after it).
            return Ok(match rest.rsplit_once(':') {
                Some((p, tag)) if !tag.contains('/') && !tag.is_empty() => {
                    ImageRef::OciDir { path: path(p)?, tag: Some(tag.to_string()) }
                }
                _ => ImageRef::OciDir { path: path(rest)?, tag: None },
            });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            return Ok(ImageRef::OciArchive { path: path(rest)? });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return Ok(ImageRef::DockerArchive { path: path(rest)? });
        }
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            return Err(bad(s, "empty or holds spaces"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) if valid_digest(d) => (n, Some(d.to_string())),
            Some(_) => return Err(bad(s, "a digest is `sha256:` and 64 hex characters")),
            None => (s, None),
        };
        // A tag is after the last `:` that comes after the last `/` (a port's colon comes before).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(name[last_slash + i + 1..].to_string())),
            None => (name, None),
        };
        if tag.as_deref() == Some("") {
            return Err(bad(s, "an empty tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((host, repo)) if host.contains('.') || host.contains(':') || host == "localhost" => {
                (host.to_string(), repo.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if repository.is_empty() || !repository.chars().all(ok) {
            return Err(bad(s, "a repository name is lowercase letters, digits, `.`, `_`, `-` and `/`"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(ImageRef::Registry { registry, repository, tag, digest })
    }
}

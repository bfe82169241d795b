//! Image apps (iExec's `DOCKER` type) on a worker, in its enclaves and in `veil app test`: fetching
//! the image the app names (from a registry, or an OCI archive in storage), refusing it unless its
//! manifest digest is the app's on-chain checksum, keeping it unpacked once in the image cache, and
//! the container job a task runs.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use veil_core::B256;
use veil_exec::container::{ContainerJob, ContainerRuntime};
use veil_exec::{ExecError, TaskDirs};
use veil_oci::{Image, ImageRef, ImageStore, OciError, Registry, RootfsLease};

/// Largest image (its layers) a worker fetches.
pub const MAX_IMAGE: u64 = 4 << 30;
/// Default size of a worker's image cache.
pub const DEFAULT_CACHE: u64 = 8 << 30;

/// Whether an app is an image: iExec's `DOCKER` type.
pub fn is_image_app(app_type: &str) -> bool {
    app_type.eq_ignore_ascii_case("DOCKER")
}

/// `sha256:<hex>` of an on-chain checksum.
pub fn digest_of(checksum: &B256) -> String {
    format!("sha256:{}", hex::encode(checksum.as_slice()))
}

/// Why an image could not be had, and whether trying again could help (the network failed) or
/// not (the image is not the registered one, or is malformed).
#[derive(Debug)]
pub struct FetchError {
    pub cause: String,
    pub retry: bool,
}

impl From<OciError> for FetchError {
    fn from(e: OciError) -> FetchError {
        let retry = matches!(e, OciError::Registry(_));
        FetchError { cause: e.to_string(), retry }
    }
}

pub struct Images {
    store: Arc<ImageStore>,
    registry: Registry,
    http: reqwest::Client,
    runtime: Result<ContainerRuntime, String>,
}

impl Images {
    /// The image cache under `dir` (at most `cache_limit` bytes) and the container runtime found
    /// here (apps get the network when `network`).
    pub fn open(dir: &Path, cache_limit: u64, network: bool, http: reqwest::Client) -> Result<Images, String> {
        let store = ImageStore::open(&dir.join("images"), cache_limit).map_err(|e| e.to_string())?;
        let runtime = ContainerRuntime::detect(&dir.join("runc"), network);
        Ok(Images { store, registry: Registry::new(http.clone(), veil_oci::Credentials::from_env()), http, runtime })
    }

    /// What a worker killed mid-task left behind in its folder `dir`: its containers (still running)
    /// and their mounted layers. Only for the worker that owns `dir`, before it takes work.
    pub fn clear_stale(&self, dir: &Path) {
        if let Ok(rt) = &self.runtime {
            let n = rt.clear_stale();
            if n > 0 {
                tracing::warn!("removed {n} container(s) a previous run of this worker left running");
            }
        }
        for tasks in [dir.join("tasks"), dir.join("enclaves")] {
            if veil_exec::container::unmount_stale(&tasks) > 0 {
                let _ = std::fs::remove_dir_all(&tasks);
            }
        }
    }

    /// The runtime, or why image apps cannot run here.
    pub fn runtime(&self) -> Result<&ContainerRuntime, String> {
        self.runtime.as_ref().map_err(|e| format!("this worker cannot run image apps: {e}"))
    }

    /// What runs images here, for the worker's start-up line.
    pub fn describe(&self) -> String {
        match &self.runtime {
            Ok(r) => format!("image apps run with {}", r.describe()),
            Err(e) => format!("image apps cannot run here: {e}"),
        }
    }

    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// The image an app names, checked against its checksum: from the cache, else from storage (an
    /// http(s) URL to an OCI archive) or a registry.
    pub async fn fetch(&self, multiaddr: &str, checksum: &B256) -> Result<Image, FetchError> {
        let expected = digest_of(checksum);
        if let Some(kept) = self.store.get(&expected) {
            return Ok(kept);
        }
        let scratch = self.store.scratch()?;
        let r = self.fetch_into(multiaddr, &expected, &scratch).await;
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        r
    }

    async fn fetch_into(&self, multiaddr: &str, expected: &str, scratch: &Path) -> Result<Image, FetchError> {
        let image = if multiaddr.starts_with("http://") || multiaddr.starts_with("https://") {
            let file = scratch.join("image.tar");
            download_to(&self.http, multiaddr, &file, MAX_IMAGE).await?;
            let local = ImageRef::OciArchive { path: file };
            tokio::task::block_in_place(|| veil_oci::open_local(&local, scratch))?
        } else {
            let r = ImageRef::parse(multiaddr)?;
            if !matches!(r, ImageRef::Registry { .. }) {
                return Err(FetchError {
                    cause: format!(
                        "`{multiaddr}` is a local image: deploy it with `veil app deploy --image` so it is stored where workers fetch it"
                    ),
                    retry: false,
                });
            }
            self.registry.pull(&r, &scratch.join("pulled"), Some(expected), MAX_IMAGE).await?
        };
        if image.manifest_digest != expected {
            return Err(OciError::ChecksumMismatch { expected: expected.into(), actual: image.manifest_digest }.into());
        }
        Ok(tokio::task::block_in_place(|| self.store.keep(&image))?)
    }

    /// The image's shared root filesystem (unpacked now if it is not yet).
    pub fn rootfs(&self, image: &Image) -> Result<RootfsLease, String> {
        self.store.rootfs(image).map_err(|e| e.to_string())
    }
}

/// Streams `url` into `file` (at most `max` bytes).
async fn download_to(http: &reqwest::Client, url: &str, file: &Path, max: u64) -> Result<(), FetchError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let retry = |cause: String| FetchError { cause, retry: true };
    let r = http.get(url).send().await.map_err(|e| retry(format!("download {url}: {e}")))?;
    if !r.status().is_success() {
        return Err(retry(format!("download {url}: HTTP {}", r.status())));
    }
    let mut f = tokio::fs::File::create(file).await.map_err(|e| retry(e.to_string()))?;
    let (mut n, mut body) = (0u64, r.bytes_stream());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| retry(format!("download {url}: {e}")))?;
        n += chunk.len() as u64;
        if n > max {
            return Err(FetchError { cause: format!("the image at {url} is larger than {max} bytes"), retry: false });
        }
        f.write_all(&chunk).await.map_err(|e| retry(e.to_string()))?;
    }
    f.flush().await.map_err(|e| retry(e.to_string()))
}

/// An image task as the enclave process receives it: where the unpacked image is and how to run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageTask {
    pub rootfs: PathBuf,
    /// The manifest digest: the app's checksum and its enclave measurement.
    pub measurement: B256,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// The OCI runtime the host found (the enclave runs the task with it).
    pub runtime: ContainerRuntime,
}

impl ImageTask {
    pub fn new(image: &Image, rootfs: &Path, runtime: &ContainerRuntime) -> ImageTask {
        let c = &image.config;
        ImageTask {
            rootfs: rootfs.to_path_buf(),
            measurement: B256::from(image.checksum()),
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            cmd: c.cmd.clone().unwrap_or_default(),
            env: c.env.clone().unwrap_or_default(),
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            user: c.user.clone().filter(|u| !u.is_empty()),
            runtime: runtime.clone(),
        }
    }

    /// The container job of a task laid out in `dirs` (the app sees `/iexec_in` and `/iexec_out`).
    pub fn job(
        &self,
        dirs: &TaskDirs,
        args: &[String],
        info: &veil_exec::contract::TaskInfo,
        time_limit: Duration,
        memory_limit: u64,
    ) -> Result<ContainerJob, ExecError> {
        use veil_exec::container::{IN, OUT, command};
        Ok(ContainerJob {
            rootfs: self.rootfs.clone(),
            task_dir: dirs.root.clone(),
            command: command(&self.entrypoint, &self.cmd, args)?,
            image_env: self.env.clone(),
            task_env: veil_exec::contract::environment(info, Path::new(IN), Path::new(OUT)),
            working_dir: self.working_dir.clone(),
            user: self.user.clone(),
            iexec_in: dirs.iexec_in.clone(),
            iexec_out: dirs.iexec_out.clone(),
            time_limit,
            memory_limit,
            stdout: dirs.root.join("stdout.log"),
            stderr: dirs.root.join("stderr.log"),
        })
    }
}

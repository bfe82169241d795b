//! Image apps from the command line: `veil app deploy --image REF [--push REF]`, `veil app test
//! --image REF`, and Dockerfile projects (`veil app init --template docker`) built with podman or
//! buildah. Images are read, pulled, unpacked and run by the same code as on a worker.

use crate::app_cmd::{TestArgs, Tested};
use crate::chain_cmd::{Conn, DeployArgs, runtime};
use crate::cli_io::{emit, veil_home};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use veil_exec::TaskDirs;
use veil_exec::contract::TaskInfo;
use veil_oci::{Image, ImageRef};
use veil_pool::image::{ImageTask, Images};

/// Where a Dockerfile project's built image is written (hidden: never part of anything packed).
const BUILT: &str = ".veil-image.tar";

/// A project built from a Dockerfile rather than packed as a bundle.
pub fn is_image_project(dir: &Path) -> bool {
    dir.join("Dockerfile").is_file() && !dir.join(veil_exec::bundle::MANIFEST).is_file()
}

fn run(cmd: &mut std::process::Command, what: &str) -> Result<()> {
    // The tool's progress goes to standard error, keeping stdout for results.
    let status = cmd.stdout(std::io::stderr()).status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}): see its output above");
    }
    Ok(())
}

/// Builds the project's Dockerfile with podman (or buildah) into a Docker archive; returns its
/// reference (`docker-archive:DIR/.veil-image.tar`).
pub fn build(dir: &Path, build_args: &[String], json: bool) -> Result<String> {
    let base = dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_else(|| "app".into());
    let clean: String = base.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let tag = format!("localhost/veil-build/{}:latest", clean.trim_matches('-'));
    let out = dir.join(BUILT);
    let _ = std::fs::remove_file(&out);
    let mut args: Vec<String> = vec![];
    for b in build_args {
        if !b.contains('=') {
            bail!("--build-arg `{b}`: write NAME=VALUE");
        }
        args.extend(["--build-arg".into(), b.clone()]);
    }
    if let Some(podman) = veil_exec::process::which("podman") {
        if !json {
            eprintln!("building the image with podman ({tag})");
        }
        // Flags that work without a Docker daemon, systemd or raisable hard limits (DESIGN §11).
        let global = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"];
        run(
            std::process::Command::new(&podman)
                .args(global)
                .args(["build", "--ulimit", "nofile=20000:20000", "-t", &tag])
                .args(&args)
                .arg(dir),
            "podman build",
        )?;
        run(std::process::Command::new(&podman).args(global).args(["save", "-o"]).arg(&out).arg(&tag), "podman save")?;
    } else if let Some(buildah) = veil_exec::process::which("buildah") {
        if !json {
            eprintln!("building the image with buildah ({tag})");
        }
        run(std::process::Command::new(&buildah).args(["bud", "-t", &tag]).args(&args).arg(dir), "buildah bud")?;
        let dest = format!("docker-archive:{}:{tag}", out.display());
        run(std::process::Command::new(&buildah).args(["push", &tag, &dest]), "buildah push")?;
    } else {
        bail!(
            "this project is built from its Dockerfile by podman or buildah, and neither is installed here (Debian: apt-get install podman); or build the image elsewhere and give it with --image docker-archive:FILE"
        );
    }
    Ok(format!("docker-archive:{}", out.display()))
}

/// The image `reference` names: a local one read (a Docker archive becomes an OCI layout), a
/// registry one pulled; kept in this machine's image cache.
async fn open(reference: &str, images: &Images) -> Result<Image> {
    let r = ImageRef::parse(reference)?;
    let scratch = images.store().scratch()?;
    let image = match &r {
        ImageRef::Registry { .. } => {
            let reg = veil_oci::Registry::new(veil_sdk::http(), veil_oci::Credentials::from_env());
            reg.pull(&r, &scratch.join("pulled"), None, veil_pool::image::MAX_IMAGE).await
        }
        _ => veil_oci::open_local(&r, &scratch),
    };
    let kept = image.and_then(|i| images.store().keep(&i));
    let _ = std::fs::remove_dir_all(&scratch);
    kept.with_context(|| format!("cannot read the image {reference}"))
}

fn cache(network: bool) -> Result<Images> {
    Images::open(&veil_home(), veil_pool::image::DEFAULT_CACHE, network, veil_sdk::http()).map_err(anyhow::Error::msg)
}

/// Runs the image as a worker would, in `dirs`; returns how it ended and what ran.
pub fn test(
    a: &TestArgs,
    reference: &str,
    dirs: &TaskDirs,
    info: &TaskInfo,
    args: &[String],
    (time_limit, memory_limit): (Duration, u64),
    json: bool,
) -> Result<(Result<veil_exec::Outcome, veil_exec::ExecError>, Tested)> {
    let images = cache(a.app_network == crate::pool_cmd::OnOff::On)?;
    let rt = images.runtime().map_err(anyhow::Error::msg)?;
    let image = runtime()?.block_on(open(reference, &images))?;
    let lease = images.rootfs(&image).map_err(anyhow::Error::msg)?;
    let task = ImageTask::new(&image, &lease.path, rt);
    let job = task.job(dirs, args, info, time_limit, memory_limit)?;
    let progress = crate::progress::Progress::start(&format!("running {reference}"), None, json);
    let ran = rt.run(&job);
    progress.finish();
    let checksum = format!("0x{}", hex::encode(image.checksum()));
    let tested = Tested {
        name: reference.to_string(),
        runtime: "image",
        what: "image",
        about: json!({
            "reference": reference,
            "digest": image.manifest_digest,
            "checksum": checksum,
            "measurement": checksum,
            "layers": image.layers.len(),
            "runner": rt.describe(),
        }),
    };
    Ok((ran, tested))
}

/// `veil app deploy --image REF [--push REGISTRY/NAME:TAG]`: registers an image app (`DOCKER`),
/// its checksum the manifest digest. A local image is stored in Veil's storage (or pushed to a
/// registry with --push); a registry image is registered where it is.
/// `project`: the Dockerfile project it was built from (which then remembers the app, as a
/// bundle project does, for `veil app publish` and `veil app run`).
pub fn deploy(
    reference: &str,
    push: Option<&str>,
    storage: Option<String>,
    args: &DeployArgs,
    conn: &Conn,
    project: Option<&Path>,
    json: bool,
) -> Result<()> {
    let r = ImageRef::parse(reference)?;
    let key = args.signer.key()?;
    let rt = runtime()?;
    let (archive, multiaddr, digest) = match (&r, push) {
        (ImageRef::Registry { .. }, Some(_)) => {
            bail!("--push is for local images: {reference} is in a registry already")
        }
        (ImageRef::Registry { digest, .. }, None) => {
            let reg = veil_oci::Registry::new(veil_sdk::http(), veil_oci::Credentials::from_env());
            let found = rt.block_on(reg.resolve(&r)).with_context(|| format!("cannot resolve {reference}"))?;
            let d = digest.clone().or_else(|| found.first().cloned()).unwrap_or_default();
            (None, reference.to_string(), d)
        }
        (_, push) => {
            let images = cache(true)?;
            let image = rt.block_on(open(reference, &images))?;
            match push {
                Some(dest) => {
                    let dest_ref = ImageRef::parse(dest)?;
                    let reg = veil_oci::Registry::new(veil_sdk::http(), veil_oci::Credentials::from_env());
                    let d =
                        rt.block_on(reg.push(&image, &dest_ref)).with_context(|| format!("cannot push to {dest}"))?;
                    if !json {
                        eprintln!("pushed {reference} to {dest} ({d})");
                    }
                    (None, dest.to_string(), d)
                }
                None => {
                    let mut bytes = vec![];
                    veil_oci::write::write_archive(&image, &mut bytes)?;
                    (Some(bytes), reference.to_string(), image.manifest_digest.clone())
                }
            }
        }
    };
    let mut checksum = [0u8; 32];
    let hex_part = digest.trim_start_matches("sha256:");
    hex::decode_to_slice(hex_part, &mut checksum).with_context(|| format!("`{digest}` is not a sha256 digest"))?;
    let name = if args.name.trim().is_empty() { default_name(&r) } else { args.name.clone() };
    let c = rt.block_on(crate::chain_cmd::ledger(conn))?;
    let store = veil_sdk::Client::new(storage.as_deref().unwrap_or(&conn.node));
    let d = rt.block_on(veil_sdk::flows::deploy_image(&*c, &store, &key, name, archive, multiaddr, checksum))?;
    if let Some(dir) = project {
        crate::app_cmd::remember_deployment(dir, d.app, &conn.node)?;
    }
    emit(
        json,
        &json!({ "address": d.app, "app": d.app, "type": "DOCKER", "image": reference, "multiaddr": d.multiaddr, "checksum": d.checksum, "measurement": d.measurement, "block": d.block }),
        &format!(
            "app {} deployed (image)\n  image        {reference}\n  multiaddr    {}\n  checksum     {} (the manifest digest: workers refuse any other image)",
            d.app, d.multiaddr, d.checksum
        ),
    );
    Ok(())
}

/// A name for an image app: the repository's last part, or the archive's file name.
fn default_name(r: &ImageRef) -> String {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "image-app".into());
    match r {
        ImageRef::Registry { repository, .. } => repository.rsplit('/').next().unwrap_or("image-app").to_string(),
        ImageRef::OciDir { path, .. } => stem(path),
        ImageRef::OciArchive { path } | ImageRef::DockerArchive { path } => stem(path),
    }
}

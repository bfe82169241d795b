//! The iApp developer's loop: `veil app init` (a working project from a template), `veil app test`
//! (run it here exactly as a worker would: same bundle, runtime, folders and environment),
//! `veil app deploy` from the project folder, and the project's deployed app remembered for
//! `veil app publish` and `veil app run`.

use crate::cli_io::emit;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use veil_core::{Address, B256, U256};
use veil_exec::contract::TaskInfo;
use veil_exec::{Bundle, Manifest, Runtime, RuntimeKind, TaskDirs};

/// Where a project remembers the app it was deployed as (hidden: never packed).
pub const DEPLOYED: &str = ".veil-deploy.json";
/// `veil app test`'s task folder inside the project (hidden: never packed).
const TEST_DIR: &str = ".veil-test";
/// The dataset address `veil app test` gives protected data.
const MOCK_DATASET: &str = "0xDa7a000000000000000000000000000000000001";
const MOCK_DATA: &str = r#"{"email": "mock@example.com", "name": "Mock", "favouriteNumber": 7}"#;

#[derive(Clone, Copy, ValueEnum)]
pub enum Template {
    Python,
    Node,
    RustWasm,
    /// A Dockerfile (Python), built into an image with podman or buildah.
    Docker,
}

type Files = &'static [(&'static str, &'static str)];

impl Template {
    fn files(self) -> Files {
        match self {
            Template::Python => &[
                ("iapp.toml", include_str!("../templates/python/iapp.toml")),
                ("app.py", include_str!("../templates/python/app.py")),
                (".gitignore", include_str!("../templates/python/gitignore")),
            ],
            Template::Node => &[
                ("iapp.toml", include_str!("../templates/node/iapp.toml")),
                ("app.js", include_str!("../templates/node/app.js")),
                (".gitignore", include_str!("../templates/node/gitignore")),
            ],
            Template::RustWasm => &[
                ("iapp.toml", include_str!("../templates/rust-wasm/iapp.toml")),
                ("Cargo.toml", include_str!("../templates/rust-wasm/Cargo.toml")),
                ("src/main.rs", include_str!("../templates/rust-wasm/src/main.rs")),
                (".gitignore", include_str!("../templates/rust-wasm/gitignore")),
            ],
            Template::Docker => &[
                ("Dockerfile", include_str!("../templates/docker/Dockerfile")),
                ("app.py", include_str!("../templates/python/app.py")),
                (".gitignore", include_str!("../templates/docker/gitignore")),
            ],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Template::Python => "Python 3, process runtime",
            Template::Node => "Node.js, process runtime",
            Template::RustWasm => "Rust compiled to wasm32-wasip1, wasm runtime",
            Template::Docker => "Python in a Docker image (iExec's DOCKER apps), image runtime",
        }
    }
}

#[derive(Args)]
pub struct InitArgs {
    /// The app's name (lowercase letters, digits, `-` and `_`); also its folder.
    pub name: String,
    #[arg(long, value_enum, default_value = "python")]
    pub template: Template,
    /// Folder to create the project in (default: ./NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// `veil app init NAME --template T`.
pub fn init(a: InitArgs, json: bool) -> Result<()> {
    if !valid_name(&a.name) {
        bail!(
            "`{}` cannot be an app name: start with a lowercase letter, then lowercase letters, digits, `-` or `_` (64 at most)",
            a.name
        );
    }
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: choose another name or --dir", dir.display());
    }
    let mut written = vec![];
    let readme = if matches!(a.template, Template::Docker) { README_DOCKER } else { README };
    for (name, text) in a.template.files().iter().copied().chain([("README.md", readme)]) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let text = text.replace("{{name}}", &a.name).replace("{{template}}", a.template.describe());
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(name);
    }
    let next = [
        format!("cd {}", dir.display()),
        "veil app test --args World --protected-data mock --requester-secret 1=s3cr3t".to_string(),
        "veil app deploy --dev-account 1            # on a running `veil dev` network".to_string(),
        "veil app publish --tag tee --dev-account 1".to_string(),
        "veil app run --tee --args World --dev-account 4".to_string(),
    ];
    let human = format!(
        "iApp `{}` created in {} ({})\n  files: {}\nnext:\n  {}",
        a.name,
        dir.display(),
        a.template.describe(),
        written.join(", "),
        next.join("\n  ")
    );
    emit(json, &json!({ "name": a.name, "dir": dir, "files": written, "next": next }), &human);
    Ok(())
}

const README: &str = "# {{name}}

An iApp for Veil and iExec ({{template}}), made by `veil app init`.

```sh
veil app test --args World --protected-data mock --requester-secret 1=s3cr3t   # run it here, as a worker would
veil app deploy --dev-account 1                                                 # pack, store, register
veil app publish --price 0 --tag tee --dev-account 1                            # offer it
veil app run --tee --args World --dev-account 4                                 # a task on the network
```

`veil app test` keeps the last run in `.veil-test/` (`out/` is the result, `stdout.log` and
`stderr.log` the logs). `--protected-data FILE` gives the app a file as its protected data (a `.json`
file becomes a DataProtector archive first, as `veil data protect --json` makes it); `mock` gives it
a small DataProtector archive. Hidden files never go into the bundle.
";

const README_DOCKER: &str = "# {{name}}

An iApp for Veil and iExec ({{template}}), made by `veil app init --template docker`: the same
Docker image runs on iExec's workers and on Veil's.

```sh
veil app test --args World --protected-data mock --requester-secret 1=s3cr3t   # build (podman or buildah), run here as a worker would
veil app deploy --dev-account 1                                                 # build, store the image, register it (type DOCKER)
veil app publish --price 0 --tag tee --dev-account 1
veil app run --tee --args World --dev-account 4
```

`veil app test` and `veil app deploy` build the `Dockerfile` with podman (or buildah) into
`.veil-image.tar` (a Docker archive). Without network, build on a local base image:
`--build-arg BASE=localhost/python:3.11`. An image built elsewhere runs and deploys the same way:
`veil app test --image docker-archive:FILE`, `veil app deploy --image docker-archive:FILE` (or
`oci:DIR`, `oci-archive:FILE`, a registry reference; `--push HOST/NAME:TAG` sends a local image to a
registry). The app's checksum is the image's manifest digest: workers refuse any other image.
";

/// Reads the project's manifest and runs its `build` command, if any.
pub fn build(dir: &Path, json: bool) -> Result<Manifest> {
    let text = std::fs::read_to_string(dir.join(veil_exec::bundle::MANIFEST)).with_context(|| {
        format!("{} has no iapp.toml: run this in an iApp folder (veil app init makes one)", dir.display())
    })?;
    let manifest = Manifest::parse(&text)?;
    if let Some(cmd) = &manifest.build {
        if !json {
            eprintln!("building: {cmd}");
        }
        // The build's own output (e.g. cargo's progress) goes to standard error, keeping stdout for results.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .stdout(std::io::stderr())
            .status()
            .with_context(|| format!("cannot run the build command `{cmd}`"))?;
        if !status.success() {
            bail!("the build command `{cmd}` failed ({status}): fix the errors above and run again");
        }
    }
    Ok(manifest)
}

/// Builds and packs the project in `dir`.
pub fn pack(dir: &Path, json: bool) -> Result<Bundle> {
    build(dir, json)?;
    Ok(Bundle::pack(dir)?)
}

/// The app this project was last deployed as (by `veil app deploy` in it), and on which node.
fn deployed_app(dir: &Path) -> Option<(Address, String)> {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join(DEPLOYED)).ok()?).ok()?;
    Some((v["app"].as_str()?.parse().ok()?, v["node"].as_str().unwrap_or_default().to_string()))
}

/// The app a command is about: the one given, or the one deployed from the current folder — if it
/// was deployed on this node and the node still has it (a fresh `veil dev` forgets it).
pub fn app_or_deployed(app: Option<Address>, conn: &crate::chain_cmd::Conn) -> Result<Address> {
    if let Some(a) = app {
        return Ok(a);
    }
    let (app, node) = deployed_app(Path::new(".")).with_context(|| {
        format!(
            "which app? give its address, or run this in a project folder after `veil app deploy` (it reads {DEPLOYED})"
        )
    })?;
    let same = |u: &str| u.trim_end_matches('/').to_string();
    if same(&node) != same(&conn.node) {
        bail!(
            "this folder's app {app} was deployed on {node}, not on {}: give the app's address, or run veil app deploy here again",
            conn.node
        );
    }
    match crate::chain_cmd::runtime()?.block_on(conn.client().app(&app)) {
        Ok(_) => Ok(app),
        Err(e) if e.kind() == Some("not_found") => {
            bail!(
                "this folder's app {app} is not on the ledger at {node} (a fresh network?): run veil app deploy again"
            )
        }
        Err(e) => Err(e.into()),
    }
}

pub fn remember_deployment(dir: &Path, app: Address, node: &str) -> Result<()> {
    let v = json!({ "app": app, "node": node });
    crate::cli_io::write_file(&dir.join(DEPLOYED), serde_json::to_string_pretty(&v)?.as_bytes(), false)
}

#[derive(Args)]
pub struct TestArgs {
    /// The iApp folder.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Arguments for the app (as `veil run --args`).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub args: String,
    /// Protected data for the app: a file (`.json` becomes a DataProtector archive) or `mock`.
    #[arg(long)]
    pub protected_data: Option<String>,
    /// An input file: a local path or a URL (repeat for several).
    #[arg(long = "input-file")]
    pub input_files: Vec<String>,
    /// A requester secret, as INDEX=VALUE (repeat for several).
    #[arg(long = "requester-secret", value_parser = parse_secret_value)]
    pub requester_secrets: Vec<(u32, String)>,
    /// The app developer's secret.
    #[arg(long)]
    pub app_secret: Option<String>,
    /// Seconds before the app is killed.
    #[arg(long, default_value_t = 300)]
    pub time_limit: u64,
    /// Memory limit of the app, MiB (a worker's default).
    #[arg(long, default_value_t = 2048)]
    pub memory_limit_mb: u64,
    /// Largest output, MiB (a worker's default): a larger one fails on the network too.
    #[arg(long, default_value_t = 100)]
    pub max_result_mb: u64,
    /// Run this image instead of the folder's app: a registry reference or oci:DIR[:TAG],
    /// oci-archive:FILE, docker-archive:FILE.
    #[arg(long)]
    pub image: Option<String>,
    /// For a Dockerfile project: a build argument, NAME=VALUE (repeat for several), e.g.
    /// BASE=localhost/python:3.11 for a local base image.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Whether an image app may reach the network (as a worker's --app-network).
    #[arg(long, value_enum, default_value = "on")]
    pub app_network: crate::pool_cmd::OnOff,
}

fn parse_secret_value(s: &str) -> Result<(u32, String), String> {
    let (i, v) = s.split_once('=').ok_or_else(|| format!("`{s}`: write a secret as INDEX=VALUE, e.g. 1=s3cr3t"))?;
    match i.parse::<u32>() {
        Ok(i) if i > 0 => Ok((i, v.to_string())),
        _ => Err(format!("`{i}` is not a secret index (1, 2, …)")),
    }
}

/// `veil app test`: build, pack, unpack into `.veil-test/`, run as a worker would, show the outcome.
/// An image (`--image REF`, or a Dockerfile project built with podman or buildah) runs in a
/// container exactly as on a worker.
pub fn test(a: TestArgs, json: bool) -> Result<()> {
    let t0 = Instant::now();
    // Absolute, as on a worker: the runtimes start the app from its own folder.
    let dir = a.dir.canonicalize().with_context(|| format!("cannot open the iApp folder {}", a.dir.display()))?;
    let image = match &a.image {
        Some(r) => Some(r.clone()),
        None if crate::image_cmd::is_image_project(&dir) => Some(crate::image_cmd::build(&dir, &a.build_args, json)?),
        None => None,
    };
    let bundle = match image {
        Some(_) => None,
        None => Some(pack(&dir, json)?),
    };
    let root = dir.join(TEST_DIR);
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("cannot clear {}", root.display()))?;
    }
    let dirs = TaskDirs::create(&root)?;
    let info = test_task_info(&a, &dirs)?;
    let params = veil_exec::contract::Params { args: a.args.clone(), ..Default::default() };
    let args = params.argv().map_err(anyhow::Error::msg)?;
    let limits = (Duration::from_secs(a.time_limit.max(1)), a.memory_limit_mb << 20);
    let Some(bundle) = bundle else {
        let reference = image.unwrap_or_default();
        let (ran, tested) = crate::image_cmd::test(&a, &reference, &dirs, &info, &args, limits, json)?;
        return report(&a, &dirs, ran, tested, t0, json);
    };
    bundle.unpack(&dirs.app)?;
    let job = dirs.job(bundle.manifest.clone(), args, &info, limits.0, limits.1);
    let progress = crate::progress::Progress::start(&format!("running {}", bundle.manifest.name), None, json);
    let ran = run_job(&job);
    progress.finish();
    let tested = Tested {
        name: bundle.manifest.name.clone(),
        runtime: match bundle.manifest.runtime {
            RuntimeKind::Process => "process",
            RuntimeKind::Wasm => "wasm",
        },
        what: "bundle",
        about: json!({ "bytes": bundle.bytes.len(), "checksum": format!("0x{}", hex::encode(bundle.checksum())), "measurement": format!("0x{}", hex::encode(bundle.measurement())) }),
    };
    report(&a, &dirs, ran, tested, t0, json)
}

/// The folders' inputs placed as a worker places them, and the task's environment.
fn test_task_info(a: &TestArgs, dirs: &TaskDirs) -> Result<TaskInfo> {
    let dataset = match &a.protected_data {
        Some(p) => Some(place_protected_data(p, &dirs.iexec_in)?),
        None => None,
    };
    let mut input_files = vec![];
    for (i, f) in a.input_files.iter().enumerate() {
        input_files.push(place_input(f, i, &dirs.iexec_in)?);
    }
    let dealid = B256::ZERO;
    let taskid = veil_core::state::task_id(&dealid, U256::ZERO);
    Ok(TaskInfo {
        deal_id: format!("{dealid:?}"),
        task_id: format!("{taskid:?}"),
        task_index: 0,
        bot_first: 0,
        bot_size: 1,
        dataset: dataset.map(|f| (MOCK_DATASET.to_string(), f)),
        input_files,
        app_secret: a.app_secret.clone(),
        requester_secrets: a.requester_secrets.iter().cloned().collect(),
    })
}

/// What `veil app test` ran: its name, runtime, and (`what`: `about`) its bundle or image.
pub struct Tested {
    pub name: String,
    pub runtime: &'static str,
    pub what: &'static str,
    pub about: Value,
}

/// Shows the logs and the result of a test run, as a worker would judge it.
fn report(
    a: &TestArgs,
    dirs: &TaskDirs,
    ran: Result<veil_exec::Outcome, veil_exec::ExecError>,
    tested: Tested,
    t0: Instant,
    json: bool,
) -> Result<()> {
    // The same tails a worker hands the requester.
    let (out_log, err_log) = (dirs.root.join("stdout.log"), dirs.root.join("stderr.log"));
    let veil_pool::api::AppLogs { stdout, stderr, .. } = veil_pool::api::AppLogs::read(&out_log, &err_log);
    if !json {
        show_log("stdout", &stdout);
        show_log("stderr", &stderr);
    }
    let outcome = ran.map_err(|e| anyhow::anyhow!("{e}: fix the app (logs above) and run veil app test again"))?;
    veil_exec::result::check_output(&dirs.iexec_out, a.max_result_mb << 20)?;
    let computed = veil_exec::result::read_computed(&dirs.iexec_out)?;
    let digest = veil_exec::result::digest(&dirs.iexec_out, &computed)?;
    let files = list_files(&dirs.iexec_out)?;
    let result_text = std::fs::read_to_string(dirs.iexec_out.join("result.txt")).ok().filter(|t| t.len() <= 4096);
    let mut v = json!({
        "app": tested.name,
        "runtime": tested.runtime,
        "out": dirs.iexec_out,
        "files": files,
        "resultDigest": digest,
        "result": result_text,
        "stdout": stdout,
        "stderr": stderr,
        "appMs": outcome.duration.as_secs_f64() * 1000.0,
        "totalMs": t0.elapsed().as_secs_f64() * 1000.0,
        "missingLimits": outcome.missing_limits,
    });
    v[tested.what] = tested.about.clone();
    let mut human = format!(
        "{} ran in {:.0} ms ({} runtime) → {}\n  files          {}\n  result digest  {digest}\n  measurement    {}",
        tested.name,
        outcome.duration.as_secs_f64() * 1000.0,
        tested.runtime,
        dirs.iexec_out.display(),
        files.iter().map(|f| f["name"].as_str().unwrap_or_default()).collect::<Vec<_>>().join(", "),
        tested.about["measurement"].as_str().unwrap_or_default(),
    );
    for m in &outcome.missing_limits {
        human.push_str(&format!("\n  note: not applied on this machine: {m}"));
    }
    if let Some(t) = &result_text {
        human.push_str(&format!("\n--- result.txt ---\n{}", t.trim_end()));
    }
    emit(json, &v, &human);
    Ok(())
}

fn run_job(job: &veil_exec::Job) -> Result<veil_exec::Outcome, veil_exec::ExecError> {
    match job.manifest.runtime {
        RuntimeKind::Process => veil_exec::process::ProcessRuntime::new().run(job),
        RuntimeKind::Wasm => veil_wasm::WasmRuntime::new()?.run(job),
    }
}

fn show_log(name: &str, text: &str) {
    if !text.is_empty() {
        println!("--- {name} ---\n{}", text.trim_end());
    }
}

/// Puts the protected data into `IEXEC_IN` under the name a worker gives it; returns that name.
fn place_protected_data(spec: &str, iexec_in: &Path) -> Result<String> {
    let bytes = if spec == "mock" {
        veil_protect::payload::zip_json(&serde_json::from_str(MOCK_DATA)?)?
    } else {
        let path = Path::new(spec);
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the protected data {spec} (give a file, or `mock`)"))?;
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_slice(&bytes).with_context(|| format!("{spec} is not valid JSON"))?;
            veil_protect::payload::zip_json(&v)?
        } else {
            bytes
        }
    };
    let name = MOCK_DATASET.to_string();
    std::fs::write(iexec_in.join(&name), bytes)?;
    Ok(name)
}

/// Copies (a path) or downloads (a URL) an input file into `IEXEC_IN`; returns its name there.
fn place_input(spec: &str, i: usize, iexec_in: &Path) -> Result<String> {
    let name = veil_pool::worker::input_name(spec, i);
    let bytes = if spec.starts_with("http://") || spec.starts_with("https://") {
        crate::chain_cmd::runtime()?
            .block_on(veil_pool::worker::download(&veil_sdk::http(), spec))
            .map_err(anyhow::Error::msg)?
    } else {
        std::fs::read(spec).with_context(|| format!("cannot read the input file {spec}"))?
    };
    std::fs::write(iexec_in.join(&name), bytes)?;
    Ok(name)
}

fn list_files(dir: &Path) -> Result<Vec<Value>> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        out.push(json!({ "name": e.file_name().to_string_lossy(), "bytes": meta.len(), "dir": meta.is_dir() }));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

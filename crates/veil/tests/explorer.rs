//! The explorer in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver (both installed by `.ci/run`). `veil quickstart --keep` runs a confidential task and
//! keeps its network up; the test follows home → deal → task → dataset, checks what each page
//! shows, then watches a new deal appear on the home page without a reload. Screenshots are saved
//! in `target/explorer-artifacts/`.

mod common;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Browser {
    /// Prefix of the screenshots' names.
    label: String,
    http: reqwest::Client,
    base: String,
    driver: Child,
}

fn chromedriver() -> String {
    let path = std::env::var("VEIL_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&path).exists(),
        "no chromedriver at {path}: install Debian's chromium and chromium-driver (`.ci/run` does), or set VEIL_CHROMEDRIVER"
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    fn start(profile: &Path, label: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let driver_url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = common::rt().block_on(async { http.get(format!("{driver_url}/status")).send().await.is_ok() });
            if ready {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let binary = std::env::var("VEIL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,1400", format!("--user-data-dir={}", profile.display())]
        } } } });
        let mut b = Browser { label: label.into(), http, base: driver_url, driver };
        let v = b.call("POST", "/session", caps);
        let session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {v}")).to_string();
        b.base = format!("{}/session/{session}", b.base);
        b
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        common::rt().block_on(async {
            let r = match method {
                "GET" => self.http.get(&url).send().await,
                _ => self.http.post(&url).json(&body).send().await,
            }
            .unwrap();
            let v: Value = r.json().await.unwrap();
            v["value"].clone()
        })
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn eval(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": script, "args": args }))
    }

    fn text(&self) -> String {
        self.eval("return document.body.innerText", json!([])).as_str().unwrap_or_default().to_string()
    }

    fn path(&self) -> String {
        self.eval("return location.pathname", json!([])).as_str().unwrap_or_default().to_string()
    }

    /// Clicks the first element matching `css` and waits for the next page.
    fn click(&self, css: &str) {
        let before = self.path();
        let found = self.eval(
            "const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true",
            json!([css]),
        );
        assert_eq!(found, json!(true), "nothing matches `{css}` on {before}: {}", self.text());
        self.wait_for("location.pathname !== arguments[0] && document.readyState === 'complete'", json!([before]));
    }

    fn wait_for(&self, condition: &str, args: Value) {
        let started = Instant::now();
        let script = format!("return Boolean({condition})");
        while self.eval(&script, args.clone()) != json!(true) {
            assert!(started.elapsed() < Duration::from_secs(30), "waited 30 s for `{condition}` on {}", self.path());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let name = format!("{}-{name}", self.label);
        use base64::Engine;
        let png = self.call("GET", "/screenshot", json!({}));
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/explorer-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = self.base.clone();
        let _ = common::rt().block_on(async { self.http.delete(url).send().await });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `veil quickstart --keep --json --chain CHAIN`: its answer, and the process keeping the network up.
fn quickstart(chain: &str) -> (Value, Child) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["quickstart", "--keep", "--json", "--chain", chain])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("quickstart answered `{line}`: {e}"));
    (v, child)
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        // --keep leaves the network's folder behind.
    }
}

#[test]
fn the_explorer_shows_a_confidential_task_live_in_a_browser() {
    explore("embedded");
}

/// The same on a node following iExec's PoCo on anvil.
#[test]
fn the_explorer_of_a_poco_node_shows_the_same_in_a_browser() {
    explore("anvil");
}

fn explore(chain: &str) {
    let (q, child) = quickstart(chain);
    let _network = Kill(child);
    let node = q["network"]["node"].as_str().unwrap().to_string();
    let (taskid, dealid, dataset) =
        (q["taskid"].as_str().unwrap(), q["dealid"].as_str().unwrap(), q["dataset"].as_str().unwrap());
    assert_eq!(q["explorer"], format!("{node}/explorer/tasks/{taskid}"), "the quickstart prints its task's page");
    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(profile.path(), chain);

    // Home: `/` leads there; the task and its deal are listed once indexed.
    b.go(&format!("{node}/"));
    assert_eq!(b.path(), "/explorer");
    b.wait_for("document.querySelector(arguments[0])", json!([format!("a[href='/explorer/tasks/{taskid}']")]));
    let home = b.text();
    for want in ["Veil explorer", "Latest tasks", "Latest deals", "Tasks completed", "COMPLETED"] {
        assert!(home.contains(want), "home lacks `{want}`: {home}");
    }
    b.screenshot("home");

    // Deal → its task → the dataset.
    b.click(&format!("a[href='/explorer/deals/{dealid}']"));
    let deal = b.text();
    assert!(deal.contains(dealid) && deal.contains("COMPLETED") && deal.contains("Request order"), "{deal}");
    b.screenshot("deal");
    b.click(&format!("a[href='/explorer/tasks/{taskid}']"));
    // The worker reports its enclave's platform to the scheduler just after the task completed on
    // the ledger: until then the page says "not reported yet". Look again for up to 10 s.
    let started = Instant::now();
    while b.text().contains("not reported yet") && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        b.go(&format!("{node}/explorer/tasks/{taskid}"));
    }
    let task = b.text();
    for want in [taskid, "COMPLETED", "Simulated enclave: no hardware protection", "INITIALIZED", "Timeline"] {
        assert!(task.contains(want), "the task page lacks `{want}`: {task}");
    }
    b.screenshot("task");
    b.click(&format!("a[href='/explorer/datasets/{dataset}']"));
    let page = b.text();
    assert!(page.contains("quickstart sample"), "{page}");
    // The quickstart granted one use to one requester: it was used.
    let remaining = b.eval("return document.getElementById('remaining-uses').textContent", json!([]));
    assert_eq!(remaining, json!("0"), "{page}");
    let earned = b.eval("return document.getElementById('earned').textContent", json!([]));
    assert_eq!(earned, json!("2 RLC"), "the dataset's price, once: {page}");
    b.screenshot("dataset");

    // On a phone's width the task page still fits: no sideways scrolling of the page itself.
    b.call("POST", "/window/rect", json!({ "width": 390, "height": 844 }));
    b.go(&format!("{node}/explorer/tasks/{taskid}"));
    let fits = b.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1", json!([]));
    assert_eq!(fits, json!(true), "the task page overflows a 390 px wide screen");
    b.screenshot("phone-task");
    b.call("POST", "/window/rect", json!({ "width": 1200, "height": 1400 }));

    // Live: a new deal and its task show up on the open home page, with no reload.
    b.go(&format!("{node}/explorer"));
    b.eval("window.__sameDocument = true", json!([]));
    let app = q["app"].as_str().unwrap();
    common::ok(&node, &["account", "deposit", "10 RLC", "--dev-account", "4"]);
    let r = common::ok(&node, &["run", app, "--tee", "--args", "live", "--dev-account", "4", "--no-watch"]);
    let new_deal: veil_core::B256 = r["dealid"].as_str().unwrap_or_else(|| panic!("no deal: {r}")).parse().unwrap();
    let new_task = veil_core::state::task_id(&new_deal, veil_core::U256::ZERO);
    for link in [format!("a[href='/explorer/deals/{new_deal}']"), format!("a[href='/explorer/tasks/{new_task}']")] {
        b.wait_for("document.querySelector(arguments[0])", json!([link]));
    }
    assert_eq!(b.eval("return window.__sameDocument === true", json!([])), json!(true), "the page was not reloaded");
    b.screenshot("home-live");

    // Hostile input: escaped, bounded, never a blank page.
    let script = "<script>window.__pwned=1</script>";
    b.go(&format!("{node}/explorer/search?q={}", urlencode(script)));
    let text = b.text();
    assert!(text.contains("Not found") && text.contains(script), "shown as text: {text}");
    assert_eq!(b.eval("return window.__pwned === undefined", json!([])), json!(true));
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

//! A remote RPC over HTTPS (Arbitrum's are): the EVM backend verifies the server's certificate
//! against the system's roots (or `SSL_CERT_FILE`) and refuses one it cannot trust.

mod common;

use std::process::{Command, Stdio};
use veil_evm::EvmLedger;
use veil_sdk::Ledger;

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_rpc_is_verified_then_used() {
    let t = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (installed by .ci/run)");
    assert!(ok.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls_proxy.py");
    let _proxy = Killed(
        Command::new("python3")
            .arg(proxy)
            .arg(port.to_string())
            .arg(&t.evm.rpc.url)
            .arg(&cert)
            .arg(&key)
            .spawn()
            .expect("python3"),
    );
    let url = format!("https://localhost:{port}");
    let hub = Some(t.evm.deployment.hub);
    // Wait for the proxy, then: an untrusted certificate is refused with the cause.
    let mut refused = String::new();
    for _ in 0..100 {
        match EvmLedger::connect(&url, hub).await {
            Err(e) if e.to_string().contains("Connection refused") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => {
                refused = e.to_string();
                break;
            }
            Ok(_) => panic!("a self-signed certificate must not be trusted"),
        }
    }
    assert!(refused.contains("certificate verify failed"), "{refused}");
    // Trusted through SSL_CERT_FILE, the same endpoint serves PoCo.
    // SAFETY: the only thread that reads the environment here is this test's.
    unsafe { std::env::set_var("SSL_CERT_FILE", &cert) };
    let evm = EvmLedger::connect(&url, hub).await.expect("https with a trusted certificate");
    let a = evm.account(&common::addr(1)).await.expect("account over https");
    assert!(!a.account.wallet.0.is_zero());
}

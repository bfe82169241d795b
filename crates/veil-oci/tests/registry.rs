//! The registry client against a registry that wants a bearer token (the Docker token flow: a 401
//! with `WWW-Authenticate: Bearer realm=…`, a token from the realm for basic credentials). The
//! registry here is a test server serving an OCI layout; anonymous pulls from Debian's
//! docker-registry are covered end to end in the `veil` crate's image tests.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use veil_oci::{Credentials, ImageRef, OciError, Registry, sha256_digest};

const TOKEN: &str = "token-for-alice";

struct Served {
    layout: PathBuf,
    realm: String,
    manifest_digest: String,
}

fn bearer_ok(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn challenge(s: &Served) -> Response {
    let value = format!(r#"Bearer realm="{}",service="test-registry",scope="repository:app:pull""#, s.realm);
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, value)]).into_response()
}

async fn token(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    // alice:secret, base64.
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if basic != Some("Basic YWxpY2U6c2VjcmV0") || q.get("service").map(String::as_str) != Some("test-registry") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(json!({ "token": TOKEN })).into_response()
}

async fn manifest(State(s): State<Arc<Served>>, headers: HeaderMap, UrlPath(reference): UrlPath<String>) -> Response {
    if !bearer_ok(&headers) {
        return challenge(&s);
    }
    if reference != "1.0" && reference != s.manifest_digest {
        return StatusCode::NOT_FOUND.into_response();
    }
    let hex = s.manifest_digest.trim_start_matches("sha256:");
    let bytes = std::fs::read(s.layout.join("blobs/sha256").join(hex)).unwrap();
    ([(header::CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")], bytes).into_response()
}

async fn blob(State(s): State<Arc<Served>>, headers: HeaderMap, UrlPath(digest): UrlPath<String>) -> Response {
    if !bearer_ok(&headers) {
        return challenge(&s);
    }
    match std::fs::read(s.layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))) {
        Ok(b) => b.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn layout(dir: &std::path::Path) -> String {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, "hello", &b"hello"[..]).unwrap();
    let layer = dir.join("layer.tar");
    std::fs::write(&layer, b.into_inner().unwrap()).unwrap();
    let config = json!({ "architecture": "amd64", "os": "linux", "config": { "Cmd": ["/hello"] } });
    let img = veil_oci::write::write_layout(&dir.join("layout"), config.to_string().as_bytes(), &[layer]).unwrap();
    img.manifest_digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_registry_is_pulled_with_credentials_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let digest = layout(tmp.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let served = Arc::new(Served {
        layout: tmp.path().join("layout"),
        realm: format!("http://{host}/token"),
        manifest_digest: digest.clone(),
    });
    let app = axum::Router::new()
        .route("/token", get(token))
        .route("/v2/app/manifests/{reference}", get(manifest))
        .route("/v2/app/blobs/{digest}", get(blob))
        .with_state(served);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = ImageRef::parse(&format!("{host}/app:1.0")).unwrap();
    let http = reqwest::Client::new();

    let anonymous = Registry::new(http.clone(), None);
    let e = anonymous.pull(&r, &tmp.path().join("p0"), None, 1 << 20).await.unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");

    let wrong = Credentials { username: "alice".into(), password: "guess".into() };
    let e = Registry::new(http.clone(), Some(wrong)).pull(&r, &tmp.path().join("p1"), None, 1 << 20).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert!(!format!("{e:?}").contains("guess"), "a password never shows in errors");

    let alice = Registry::new(http.clone(), Some(Credentials { username: "alice".into(), password: "secret".into() }));
    assert_eq!(alice.resolve(&r).await.unwrap(), vec![digest.clone()]);
    let img = alice.pull(&r, &tmp.path().join("p2"), Some(&digest), 1 << 20).await.unwrap();
    assert_eq!(img.manifest_digest, digest);
    assert_eq!(img.config.cmd, Some(vec!["/hello".to_string()]));
    for l in img.blobs() {
        img.verify_blob(&l).unwrap();
    }

    let other = sha256_digest(b"another image");
    let e = alice.pull(&r, &tmp.path().join("p3"), Some(&other), 1 << 20).await.unwrap_err();
    assert!(matches!(e, OciError::ChecksumMismatch { .. }), "{e}");
    let e = alice.pull(&r, &tmp.path().join("p4"), None, 2).await.unwrap_err();
    assert!(e.to_string().contains("more than this worker's"), "{e}");
}

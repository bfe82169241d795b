//! References, layouts read with their digests checked, and layers unpacked by OCI's rules and
//! refused when unsafe. Images are built here, byte by byte (tar, gzip, JSON), as `umoci` would.

use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use veil_oci::{ImageRef, OciError, open_local, read_layout, sha256_digest, unpack_layer};

fn check(input: &str, want: Result<ImageRef, &str>) {
    match (ImageRef::parse(input), want) {
        (Ok(got), Ok(w)) => assert_eq!(got, w, "{input}"),
        (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{input}: `{e}` lacks `{needle}`"),
        (got, want) => panic!("{input}: got {got:?}, wanted {want:?}"),
    }
}

fn reg(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> ImageRef {
    ImageRef::Registry {
        registry: registry.into(),
        repository: repository.into(),
        tag: tag.map(String::from),
        digest: digest.map(String::from),
    }
}

#[test]
fn references_parse_as_docker_and_skopeo_read_them() {
    let d = format!("sha256:{}", "ab".repeat(32));
    check("python:3.11", Ok(reg("docker.io", "library/python", Some("3.11"), None)));
    check("iexechub/python-hello-world", Ok(reg("docker.io", "iexechub/python-hello-world", Some("latest"), None)));
    check("127.0.0.1:5000/hello:1.0", Ok(reg("127.0.0.1:5000", "hello", Some("1.0"), None)));
    check("localhost/a/b", Ok(reg("localhost", "a/b", Some("latest"), None)));
    check(&format!("ghcr.io/x/y@{d}"), Ok(reg("ghcr.io", "x/y", None, Some(&d))));
    check("oci:/tmp/img:v1", Ok(ImageRef::OciDir { path: "/tmp/img".into(), tag: Some("v1".into()) }));
    check("oci:/tmp/img", Ok(ImageRef::OciDir { path: "/tmp/img".into(), tag: None }));
    check("oci-archive:app.tar", Ok(ImageRef::OciArchive { path: "app.tar".into() }));
    check("docker-archive:/x/app.tar", Ok(ImageRef::DockerArchive { path: "/x/app.tar".into() }));
    check("", Err("empty"));
    check("a b", Err("spaces"));
    check("Upper/Case", Err("lowercase"));
    check("x@sha256:12", Err("64 hex"));
    check("x:", Err("empty tag"));
    check("oci:", Err("no path"));
}

/// A layer: (path, contents) files, links and whiteouts as tar entries, gzipped when asked.
enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    RawPath(&'a [u8], &'a [u8]),
}

fn layer(entries: &[E], gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::File(p, data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::Symlink(p, t) | E::Hardlink(p, t) => {
                let kind = if matches!(e, E::Symlink(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                h.set_entry_type(kind);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Fifo(p) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::RawPath(p, data) => {
                // Written by hand: the builder itself refuses `..` and absolute names.
                h.as_old_mut().name[..p.len()].copy_from_slice(p);
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    let tar = b.into_inner().unwrap();
    if !gzip {
        return tar;
    }
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&tar).unwrap();
    z.finish().unwrap()
}

fn put_blob(root: &Path, bytes: &[u8]) -> (String, u64) {
    let d = sha256_digest(bytes);
    let dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    (d, bytes.len() as u64)
}

/// An OCI layout at `root` holding one image (`tag`) made of `layers` (gzipped).
fn image(root: &Path, tag: &str, layers: &[Vec<u8>]) -> String {
    let config = json!({ "architecture": "amd64", "os": "linux", "config": {
        "Entrypoint": ["python3", "/app/app.py"], "Env": ["LANG=C.UTF-8"], "WorkingDir": "/app" },
        "rootfs": { "type": "layers", "diff_ids": [] } });
    let (cd, cs) = put_blob(root, config.to_string().as_bytes());
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let (d, s) = put_blob(root, l);
            json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s })
        })
        .collect();
    let manifest = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs },
        "layers": layer_descs });
    let (md, ms) = put_blob(root, manifest.to_string().as_bytes());
    let index = json!({ "schemaVersion": 2, "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": { "org.opencontainers.image.ref.name": tag } }] });
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    md
}

/// Unpacks every layer of the image, each checked against its digest first.
fn unpack_all(root: &Path, tag: Option<&str>, rootfs: &Path) -> Result<veil_oci::Image, OciError> {
    let img = read_layout(root, tag)?;
    for l in &img.layers {
        let path = img.verify_blob(l)?;
        unpack_layer(std::fs::File::open(path).unwrap(), l.media_type.ends_with("gzip"), rootfs)?;
    }
    Ok(img)
}

fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_layout_is_read_and_its_layers_applied_with_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, rootfs): (PathBuf, PathBuf) = (tmp.path().join("img"), tmp.path().join("rootfs"));
    let base = layer(
        &[
            E::Dir("app"),
            E::File("app/app.py", b"print(1)"),
            E::File("app/old.txt", b"x"),
            E::Dir("etc"),
            E::File("etc/a", b"a"),
            E::File("etc/b", b"b"),
            E::Symlink("app/link", "/etc/a"),
            E::Hardlink("app/hard", "app/app.py"),
        ],
        true,
    );
    let top = layer(&[E::File("app/.wh.old.txt", b""), E::File("etc/.wh..wh..opq", b""), E::File("etc/c", b"c")], true);
    let digest = image(&root, "v1", &[base, top]);
    std::fs::create_dir_all(&rootfs).unwrap();
    let img = unpack_all(&root, Some("v1"), &rootfs).unwrap();
    assert_eq!(img.manifest_digest, digest);
    assert_eq!(img.config.entrypoint, Some(vec!["python3".to_string(), "/app/app.py".to_string()]));
    assert_eq!(img.config.working_dir.as_deref(), Some("/app"));
    assert_eq!(tree(&rootfs), ["app", "app/app.py", "app/hard", "app/link", "etc", "etc/c"]);
    assert_eq!(
        std::fs::read_link(rootfs.join("app/link")).unwrap(),
        Path::new("/etc/a"),
        "a link is kept, not followed"
    );
    assert_eq!(std::fs::read(rootfs.join("app/hard")).unwrap(), b"print(1)");
    // The only image is found without its tag; an unknown tag is not.
    assert_eq!(read_layout(&root, None).unwrap().manifest_digest, digest);
    let e = read_layout(&root, Some("v2")).unwrap_err();
    assert!(e.to_string().contains("no image tagged `v2`"), "{e}");
}

#[test]
fn tampered_blobs_and_unsafe_entries_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("img");
    let good = layer(&[E::File("ok.txt", b"fine")], true);
    image(&root, "t", std::slice::from_ref(&good));
    let img = read_layout(&root, Some("t")).unwrap();
    let path = img.blob_path(&img.layers[0]).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = img.verify_blob(&img.layers[0]).unwrap_err();
    assert!(matches!(e, OciError::Digest { .. }), "{e}");
    assert!(e.to_string().contains("tampered"), "{e}");

    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zip-slip", layer(&[E::RawPath(b"../escaped.txt", b"x")], false), "climbs out"),
        ("absolute", layer(&[E::RawPath(b"/abs.txt", b"x")], false), "absolute"),
        (
            "through a link",
            layer(&[E::Symlink("out", outside.to_str().unwrap()), E::File("out/evil.txt", b"x")], true),
            "through a link",
        ),
        (
            "whiteout through a link",
            layer(&[E::Symlink("out", outside.to_str().unwrap()), E::File("out/.wh.keep", b"")], true),
            "through a link",
        ),
        ("hard link out", layer(&[E::Hardlink("h", "../../etc/passwd")], true), "climbs out"),
        ("whiteout of the parent", layer(&[E::Dir("d"), E::File("d/.wh...", b"")], true), "`.` or `..`"),
        ("whiteout of the root's parent", layer(&[E::File(".wh...", b"")], true), "`.` or `..`"),
    ];
    std::fs::write(outside.join("keep"), "kept").unwrap();
    for (name, l, needle) in cases {
        let rootfs = tmp.path().join(format!("rootfs-{}", name.replace(' ', "-")));
        std::fs::create_dir_all(&rootfs).unwrap();
        let e = unpack_layer(l.as_slice(), !matches!(name, "zip-slip" | "absolute"), &rootfs).unwrap_err();
        assert!(e.to_string().contains(needle), "{name}: `{e}` lacks `{needle}`");
    }
    assert!(!tmp.path().join("escaped.txt").exists() && !outside.join("evil.txt").exists());
    // Device nodes and FIFOs are skipped, never made; the rest of the layer unpacks.
    let rootfs = tmp.path().join("rootfs-fifo");
    std::fs::create_dir_all(&rootfs).unwrap();
    unpack_layer(layer(&[E::Fifo("pipe"), E::File("after", b"x")], true).as_slice(), true, &rootfs).unwrap();
    assert!(!rootfs.join("pipe").exists() && rootfs.join("after").is_file());
    assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "kept", "nothing outside was removed");
}

#[test]
fn an_oci_archive_opens_as_the_layout_it_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("img");
    let digest = image(&root, "latest", &[layer(&[E::File("hello", b"hi")], true)]);
    let archive = tmp.path().join("img.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    b.append_dir_all(".", &root).unwrap();
    b.finish().unwrap();
    drop(b);
    let r = ImageRef::parse(&format!("oci-archive:{}", archive.display())).unwrap();
    let img = open_local(&r, &tmp.path().join("scratch")).unwrap();
    assert_eq!(img.manifest_digest, digest);
    let same = open_local(&ImageRef::parse(&format!("oci:{}:latest", root.display())).unwrap(), tmp.path()).unwrap();
    assert_eq!(same.manifest_digest, digest);
    let e = open_local(&ImageRef::parse("docker-archive:x.tar").unwrap(), tmp.path()).unwrap_err();
    assert!(e.to_string().contains("x.tar"), "{e}");
}

/// A `docker save` archive as Docker writes it: manifest.json, the config (whose digest is the
/// image ID), and one folder per layer (linked from the archive's top level, as podman does).
fn docker_archive(path: &Path, layers: &[Vec<u8>], config: &[u8]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    let config_name = format!("{}.json", sha256_digest(config).trim_start_matches("sha256:"));
    add(&config_name, config);
    let mut names = vec![];
    for (i, l) in layers.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        add(&name, l);
        names.push(name);
    }
    let manifest = json!([{ "Config": config_name, "RepoTags": ["app:1"], "Layers": names }]);
    add("manifest.json", manifest.to_string().as_bytes());
    b.finish().unwrap();
}

#[test]
fn a_docker_archive_becomes_an_oci_image_with_a_stable_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let config =
        json!({ "architecture": "amd64", "os": "linux", "config": { "Entrypoint": ["/app"], "WorkingDir": "/w" } });
    let config = serde_json::to_vec(&config).unwrap();
    let layers = vec![layer(&[E::File("app", b"#!")], false), layer(&[E::File("w/x", b"x")], true)];
    let archive = tmp.path().join("saved.tar");
    docker_archive(&archive, &layers, &config);
    let r = ImageRef::parse(&format!("docker-archive:{}", archive.display())).unwrap();
    let a = open_local(&r, &tmp.path().join("s1")).unwrap();
    let b = open_local(&r, &tmp.path().join("s2")).unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest, "the same archive always gives the same checksum");
    assert_eq!(a.config_blob.digest, sha256_digest(&config), "the config is kept as it is (Docker's image ID)");
    assert_eq!(a.config.entrypoint, Some(vec!["/app".to_string()]));
    let types: Vec<&str> = a.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(types, [veil_oci::write::LAYER_TAR, veil_oci::write::LAYER_TAR_GZIP]);
    for l in &a.layers {
        a.verify_blob(l).unwrap();
    }

    // The OCI archive Veil stores is deterministic and opens as the same image.
    let (mut x, mut y) = (vec![], vec![]);
    veil_oci::write::write_archive(&a, &mut x).unwrap();
    veil_oci::write::write_archive(&b, &mut y).unwrap();
    assert_eq!(x, y);
    let stored = tmp.path().join("stored.tar");
    std::fs::write(&stored, &x).unwrap();
    let r = ImageRef::parse(&format!("oci-archive:{}", stored.display())).unwrap();
    assert_eq!(open_local(&r, &tmp.path().join("s3")).unwrap().manifest_digest, a.manifest_digest);

    // A manifest.json naming a file outside the archive is refused.
    let evil = tmp.path().join("evil.tar");
    let mut bld = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let m = json!([{ "Config": "../../etc/passwd", "Layers": [] }]).to_string();
    let mut h = tar::Header::new_ustar();
    h.set_size(m.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    bld.append_data(&mut h, "manifest.json", m.as_bytes()).unwrap();
    bld.finish().unwrap();
    drop(bld);
    let r = ImageRef::parse(&format!("docker-archive:{}", evil.display())).unwrap();
    let e = open_local(&r, &tmp.path().join("s4")).unwrap_err();
    assert!(e.to_string().contains("outside the archive"), "{e}");
}

#[test]
fn the_cache_unpacks_once_and_evicts_what_nobody_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let mut images = vec![];
    for i in 0..3u8 {
        let root = tmp.path().join(format!("img{i}"));
        image(&root, "latest", &[layer(&[E::File("blob", &vec![i; 4096])], true)]);
        images.push(read_layout(&root, Some("latest")).unwrap());
    }
    // Room for about two images (each ~4 KiB unpacked plus its layout).
    let store = veil_oci::ImageStore::open(&tmp.path().join("cache"), 11_000).unwrap();
    let kept: Vec<_> = images.iter().map(|i| store.keep(i).unwrap()).collect();
    let first = store.rootfs(&kept[0]).unwrap();
    assert!(first.unpacked_now);
    assert_eq!(std::fs::read(first.path.join("blob")).unwrap(), vec![0u8; 4096]);
    assert!(!store.rootfs(&kept[0]).unwrap().unpacked_now, "unpacked once");
    drop(store.rootfs(&kept[1]).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(store.rootfs(&kept[2]).unwrap());
    // Image 0 is in use and stays; image 1 (least recently used, idle) went.
    assert!(first.path.is_dir(), "an image in use is never evicted");
    assert!(store.get(&kept[1].manifest_digest).is_none(), "the idle, least recently used image went");
    assert!(store.get(&kept[2].manifest_digest).is_some());
}

//! Bundles: canonical bytes, stable measurement, hostile archives refused.

use std::io::{Cursor, Write};
use veil_exec::bundle::{Bundle, BundleError};

const MANIFEST: &str = "name = \"b\"\nruntime = \"process\"\nentrypoint = \"run.sh\"\n";

fn folder(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("iapp.toml"), MANIFEST).unwrap();
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(dir.join("lib/data.txt"), "data").unwrap();
}

#[test]
fn packing_is_canonical() {
    let d = tempfile::tempdir().unwrap();
    folder(&d.path().join("a"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    folder(&d.path().join("b"));
    let (a, b) = (Bundle::pack(&d.path().join("a")).unwrap(), Bundle::pack(&d.path().join("b")).unwrap());
    assert_eq!(a.bytes, b.bytes, "same content, same bytes, whatever the timestamps");
    assert_eq!(a.measurement(), b.measurement());
    std::fs::write(d.path().join("b/lib/data.txt"), "Data").unwrap();
    assert_ne!(Bundle::pack(&d.path().join("b")).unwrap().measurement(), a.measurement());
    let back = Bundle::from_bytes(a.bytes.clone()).unwrap();
    back.unpack(&d.path().join("out")).unwrap();
    assert_eq!(std::fs::read_to_string(d.path().join("out/lib/data.txt")).unwrap(), "data");
}

fn zip_with(name: &str) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("iapp.toml", o).unwrap();
    z.write_all(MANIFEST.as_bytes()).unwrap();
    z.start_file(name, o).unwrap();
    z.write_all(b"evil").unwrap();
    z.finish().unwrap().into_inner()
}

#[test]
fn hostile_archives_and_folders_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for name in ["../escape.txt", "/etc/evil", "a/../../b"] {
        let b = Bundle::from_bytes(zip_with(name)).unwrap();
        let e = b.unpack(&d.path().join("x")).unwrap_err();
        assert!(matches!(e, BundleError::Unsafe(_)), "{name}: {e}");
    }
    assert!(!d.path().join("escape.txt").exists());
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default();
    z.start_file("iapp.toml", o).unwrap();
    z.write_all(MANIFEST.as_bytes()).unwrap();
    z.add_symlink("link", "/etc/passwd", o).unwrap();
    let b = Bundle::from_bytes(z.finish().unwrap().into_inner()).unwrap();
    assert!(matches!(b.unpack(&d.path().join("y")), Err(BundleError::Unsafe(_))));
    folder(&d.path().join("f"));
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("f/link")).unwrap();
    assert!(matches!(Bundle::pack(&d.path().join("f")), Err(BundleError::Unsafe(_))));
    std::fs::write(d.path().join("f/iapp.toml"), "name = \"b\"\nruntime = \"docker\"\nentrypoint = \"run.sh\"\n")
        .unwrap();
    assert!(matches!(Bundle::pack(&d.path().join("f")), Err(BundleError::Manifest(_))));
    assert!(matches!(Bundle::from_bytes(b"not a zip".to_vec()), Err(BundleError::Zip(_))));
}

fn names(b: &Bundle) -> Vec<String> {
    let z = zip::ZipArchive::new(Cursor::new(b.bytes.clone())).unwrap();
    z.file_names().map(str::to_string).collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

#[test]
fn hidden_files_stay_out_and_include_picks_the_files() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    folder(p);
    std::fs::create_dir_all(p.join(".veil-test/out")).unwrap();
    std::fs::write(p.join(".veil-test/out/result.txt"), "x").unwrap();
    std::fs::write(p.join(".env"), "SECRET=1").unwrap();
    assert_eq!(names(&Bundle::pack(p).unwrap()), ["iapp.toml", "lib/data.txt", "run.sh"]);

    let with = |include: &str| {
        std::fs::write(p.join("iapp.toml"), format!("{MANIFEST}include = {include}\nbuild = \"true\"\n")).unwrap();
        Bundle::pack(p)
    };
    assert_eq!(names(&with(r#"["run.sh"]"#).unwrap()), ["iapp.toml", "run.sh"]);
    assert_eq!(names(&with(r#"["run.sh", "lib"]"#).unwrap()), ["iapp.toml", "lib/data.txt", "run.sh"]);
    let missing = with(r#"["run.sh", "app.wasm"]"#).unwrap_err().to_string();
    assert!(missing.contains("`app.wasm` does not exist"), "{missing}");
    let outside = with(r#"["../etc"]"#).unwrap_err().to_string();
    assert!(outside.contains("inside the project folder"), "{outside}");
    assert_eq!(with(r#"["run.sh"]"#).unwrap().manifest.build.as_deref(), Some("true"));
}

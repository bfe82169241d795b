//! App bundles from storage (workers, enclaves): read, then unpack into a scratch folder. Nothing may
//! land outside it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = veil_exec::Bundle::from_bytes(data.to_vec()) else { return };
    let dir = tempfile::tempdir().expect("scratch folder");
    let dest = dir.path().join("app");
    let _ = bundle.unpack(&dest);
    for e in walk(dir.path()) {
        assert!(e.starts_with(&dest), "{} escaped the destination", e.display());
    }
});

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

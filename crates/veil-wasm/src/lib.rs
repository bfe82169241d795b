//! # veil-wasm — the `wasm` runtime
//!
//! Owns running an iApp compiled to `wasm32-wasip1` in wasmtime: WASI preview 1 with exactly the
//! iExec environment, `IEXEC_IN` preopened read-only at `/iexec_in` and `IEXEC_OUT` writable at
//! `/iexec_out` (nothing else of the host's file system), an epoch-based time limit, a memory cap, and
//! compiled modules cached by content hash.
//!
//! It lives in its own crate because wasmtime is heavy to build: nothing in the protocol crates may
//! depend on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use veil_exec::{ExecError, Job, Outcome, Runtime};
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::cli::OutputFile;
use wasmtime_wasi::p1::{WasiP1Ctx, add_to_linker_sync};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// How often the epoch advances: the granularity of the time limit.
const TICK: Duration = Duration::from_millis(5);

struct Host {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

pub struct WasmRuntime {
    engine: Engine,
    modules: Mutex<HashMap<[u8; 32], Module>>,
}

impl WasmRuntime {
    pub fn new() -> Result<Arc<WasmRuntime>, ExecError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| ExecError::Start(format!("wasmtime: {e}")))?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("veil-wasm-epoch".into())
            .spawn(move || {
                while let Some(e) = ticker.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| ExecError::Start(format!("epoch thread: {e}")))?;
        Ok(Arc::new(WasmRuntime { engine, modules: Mutex::new(HashMap::new()) }))
    }

    /// The module compiled to this engine's native code, for a cache that keeps it safe.
    pub fn compile_to_bytes(&self, wasm: &[u8]) -> Result<Vec<u8>, ExecError> {
        self.module(wasm)?.serialize().map_err(|e| ExecError::Start(format!("wasmtime: {e}")))
    }

    /// Loads native code made by [`Self::compile_to_bytes`] for `wasm`, so running `wasm` skips
    /// compilation.
    ///
    /// # Safety
    /// `native` must come unaltered from `compile_to_bytes` of the same wasmtime build (wasmtime
    /// runs it as machine code); callers keep it sealed and authenticated.
    pub unsafe fn preload(&self, wasm: &[u8], native: &[u8]) -> Result<(), ExecError> {
        // SAFETY: the caller guarantees the bytes are wasmtime's own serialization.
        let m = unsafe { Module::deserialize(&self.engine, native) }
            .map_err(|e| ExecError::Start(format!("wasmtime: cached module refused: {e}")))?;
        self.modules.lock().unwrap_or_else(|p| p.into_inner()).insert(module_key(wasm), m);
        Ok(())
    }

    fn module(&self, bytes: &[u8]) -> Result<Module, ExecError> {
        let key = module_key(bytes);
        let mut cache = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let m = Module::new(&self.engine, bytes)
            .map_err(|e| ExecError::Start(format!("not a valid WebAssembly module: {e}")))?;
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(key, m.clone());
        Ok(m)
    }
}

/// A content key: two different modules never share a compiled module.
fn module_key(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The environment as the guest sees it: the iExec folders at their guest paths.
fn guest_env(job: &Job) -> Vec<(String, String)> {
    job.env
        .iter()
        .map(|(k, v)| match k.as_str() {
            "IEXEC_IN" | "IEXEC_INPUT_FILES_FOLDER" => (k.clone(), "/iexec_in".to_string()),
            "IEXEC_OUT" => (k.clone(), "/iexec_out".to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

impl Runtime for WasmRuntime {
    fn run(&self, job: &Job) -> Result<Outcome, ExecError> {
        let start = Instant::now();
        let entry = job.app_dir.join(&job.manifest.entrypoint);
        let bytes = std::fs::read(&entry).map_err(|e| ExecError::Start(format!("{}: {e}", entry.display())))?;
        let module = self.module(&bytes)?;
        let start_err = |e: wasmtime::Error| ExecError::Start(e.to_string());
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&job.manifest.entrypoint);
        wasi.args(&job.args);
        for (k, v) in guest_env(job) {
            wasi.env(k, v);
        }
        wasi.preopened_dir(&job.iexec_in, "/iexec_in", FsPerms::ReadOnly).map_err(start_err)?;
        wasi.preopened_dir(&job.iexec_out, "/iexec_out", FsPerms::ReadWrite).map_err(start_err)?;
        wasi.stdout(OutputFile::new(std::fs::File::create(&job.stdout)?));
        wasi.stderr(OutputFile::new(std::fs::File::create(&job.stderr)?));
        let memory = usize::try_from(job.memory_limit).unwrap_or(usize::MAX).max(1 << 20);
        let limits = StoreLimitsBuilder::new().memory_size(memory).instances(4).build();
        let mut store = Store::new(&self.engine, Host { wasi: wasi.build_p1(), limits });
        store.limiter(|h| &mut h.limits);
        let ticks = (job.time_limit.as_micros() / TICK.as_micros()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let mut linker: Linker<Host> = Linker::new(&self.engine);
        add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi).map_err(start_err)?;
        let instance = linker.instantiate(&mut store, &module).map_err(start_err)?;
        let main = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| ExecError::Start(format!("no WASI `_start`: {e}")))?;
        match main.call(&mut store, ()) {
            Ok(()) => Ok(Outcome { duration: start.elapsed(), missing_limits: vec![] }),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    return if exit.0 == 0 {
                        Ok(Outcome { duration: start.elapsed(), missing_limits: vec![] })
                    } else {
                        Err(ExecError::Exit(exit.0))
                    };
                }
                if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    return Err(ExecError::Timeout(job.time_limit));
                }
                Err(ExecError::Start(format!("the app trapped: {e}")))
            }
        }
    }
}

//! Spinners and byte counters for long work, on standard error and only on a terminal (never with
//! `--json`, never in pipes or logs), so scripted output stays clean.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// A live line: `⠹ message  (done / total, elapsed)`; cleared when finished or dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    message: Arc<str>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `message`; `total` bytes make it a byte counter.
    pub fn start(message: &str, total: Option<u64>, json: bool) -> Progress {
        let mut p = Progress {
            stop: Arc::new(AtomicBool::new(false)),
            done: Arc::new(AtomicU64::new(0)),
            message: Arc::from(message),
            thread: None,
        };
        if json || !std::io::stderr().is_terminal() {
            return p;
        }
        let (stop, done, text) = (p.stop.clone(), p.done.clone(), p.message.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut frame = 0;
            while !stop.load(Ordering::Relaxed) {
                let secs = started.elapsed().as_secs_f64();
                let count = match total {
                    Some(t) if t > 0 => {
                        let d = done.load(Ordering::Relaxed).min(t);
                        format!("  {} / {} ({:.0}%)", mib(d), mib(t), d as f64 * 100.0 / t as f64)
                    }
                    _ => String::new(),
                };
                eprint!("\r\x1b[2K{} {text}{count}  {secs:.1} s", FRAMES[frame % FRAMES.len()]);
                let _ = std::io::stderr().flush();
                frame += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        p.thread = Some(thread);
        p
    }

    /// Wraps a reader so the bytes read through it advance the counter.
    pub fn reader<R: Read>(&self, inner: R) -> Counting<R> {
        Counting { inner, done: self.done.clone() }
    }

    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

pub struct Counting<R> {
    inner: R,
    done: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

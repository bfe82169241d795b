//! The dataset format: `IV (16 bytes) ‖ AES-256-CBC(plaintext, PKCS#7)`, checksum = sha256(file).

use aes::Aes256;
use aes::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{Read, Write};
use std::sync::mpsc;

type Enc = cbc::Encryptor<Aes256>;
type Dec = cbc::Decryptor<Aes256>;

/// Bytes read, encrypted and written at a time; a few chunks are in flight at most.
const CHUNK: usize = 1 << 20;
const IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the key must be 32 bytes written as base64 (44 characters) or hex (64 characters)")]
    BadKey,
    #[error("the file is not an encrypted dataset: {0}")]
    Format(&'static str),
    #[error("wrong key or corrupted file: the padding after decryption is invalid")]
    Padding,
    #[error(
        "checksum mismatch: the file's sha256 is {actual}, the expected checksum is {expected}; refusing to decrypt"
    )]
    Checksum { expected: String, actual: String },
}

/// A dataset key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatasetKey(pub [u8; 32]);

impl fmt::Debug for DatasetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatasetKey(…)")
    }
}

impl DatasetKey {
    pub fn random() -> DatasetKey {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        DatasetKey(k)
    }

    /// iExec's form: base64, 44 characters.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads base64 (iExec) or hex (`openssl -K`), with or without `0x`.
    pub fn parse(s: &str) -> Result<DatasetKey, ProtectError> {
        let t = s.trim();
        let h = t.strip_prefix("0x").unwrap_or(t);
        let bytes = if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ProtectError::BadKey)?
        } else {
            B64.decode(t).map_err(|_| ProtectError::BadKey)?
        };
        bytes.try_into().map(DatasetKey).map_err(|_| ProtectError::BadKey)
    }
}

/// What encrypting produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptSummary {
    pub plain_bytes: u64,
    pub encrypted_bytes: u64,
    /// sha256 of the encrypted file: the dataset's on-chain checksum.
    pub checksum: [u8; 32],
}

impl EncryptSummary {
    pub fn checksum_hex(&self) -> String {
        format!("0x{}", hex(&self.checksum))
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Fills `buf` from `r` as far as possible; returns how many bytes were read (less only at EOF).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encrypts `input` into `output` with a random IV. Encryption runs on this thread while another
/// thread hashes and writes, so the two costs overlap; memory stays at a few MiB.
pub fn encrypt<R: Read, W: Write + Send>(
    key: &DatasetKey,
    mut input: R,
    output: W,
) -> Result<EncryptSummary, ProtectError> {
    let mut iv = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut iv);
    encrypt_with_iv(key, &iv, &mut input, output)
}

/// [`encrypt`] with a given IV (for tests and byte-for-byte comparisons).
pub fn encrypt_with_iv<R: Read, W: Write + Send>(
    key: &DatasetKey,
    iv: &[u8; 16],
    input: &mut R,
    mut output: W,
) -> Result<EncryptSummary, ProtectError> {
    let mut enc = Enc::new_from_slices(&key.0, iv).map_err(|_| ProtectError::BadKey)?;
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<([u8; 32], u64), std::io::Error> {
            let mut h = Sha256::new();
            let mut n = 0u64;
            for buf in rx {
                h.update(&buf);
                output.write_all(&buf)?;
                n += buf.len() as u64;
                let _ = free_tx.try_send(buf);
            }
            output.flush()?;
            Ok((h.finalize().into(), n))
        });
        let mut plain = 0u64;
        let produce = (|| -> Result<(), ProtectError> {
            tx.send(iv.to_vec()).map_err(|_| broken_pipe())?;
            loop {
                let mut buf = free_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK + 16));
                buf.resize(CHUNK + 16, 0);
                let n = read_full(input, &mut buf[..CHUNK])?;
                plain += n as u64;
                let last = n < CHUNK;
                let len = if last {
                    // PKCS#7: always 1 to 16 bytes of padding, each the padding length.
                    let pad = 16 - n % 16;
                    buf[n..n + pad].fill(pad as u8);
                    n + pad
                } else {
                    n
                };
                let (blocks, _) = Array::slice_as_chunks_mut(&mut buf[..len]);
                enc.encrypt_blocks(blocks);
                buf.truncate(len);
                tx.send(buf).map_err(|_| broken_pipe())?;
                if last {
                    return Ok(());
                }
            }
        })();
        drop(tx);
        let written = writer.join().map_err(|_| ProtectError::Io(broken_pipe()))?;
        produce?;
        let (checksum, encrypted_bytes) = written?;
        Ok(EncryptSummary { plain_bytes: plain, encrypted_bytes, checksum })
    })
}

fn broken_pipe() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the writer stopped")
}

/// sha256 of everything `r` yields.
pub fn sha256_of(mut r: impl Read) -> Result<[u8; 32], ProtectError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Checks `checksum` (`0x` + 64 hex, as on the ledger) against sha256 of `r`, before any decryption.
pub fn verify_checksum(r: impl Read, checksum: &str) -> Result<(), ProtectError> {
    let actual = format!("0x{}", hex(&sha256_of(r)?));
    let expected = checksum.trim().to_ascii_lowercase();
    let expected = if expected.starts_with("0x") { expected } else { format!("0x{expected}") };
    if actual != expected {
        return Err(ProtectError::Checksum { expected, actual });
    }
    Ok(())
}

/// Decrypts a dataset file (IV first) into `output`; returns the plaintext size. A wrong key is
/// detected by the padding check at the end (as openssl does); check the checksum first with
/// [`verify_checksum`] to refuse a tampered file before decrypting anything.
pub fn decrypt<R: Read, W: Write>(key: &DatasetKey, mut input: R, mut output: W) -> Result<u64, ProtectError> {
    let mut iv = [0u8; 16];
    if read_full(&mut input, &mut iv)? < 16 {
        return Err(ProtectError::Format("shorter than its 16-byte IV"));
    }
    let mut dec = Dec::new_from_slices(&key.0, &iv).map_err(|_| ProtectError::BadKey)?;
    let mut buf = vec![0u8; CHUNK + 16];
    // The last block is held back until the end: it carries the padding.
    let mut held = 0usize;
    let mut total = 0u64;
    let mut any = false;
    loop {
        let n = read_full(&mut input, &mut buf[held..held + CHUNK])?;
        let avail = held + n;
        if n < CHUNK {
            // End of input: everything left must be whole blocks, the last one padded.
            if !avail.is_multiple_of(16) {
                return Err(ProtectError::Format("ciphertext is not a whole number of 16-byte blocks"));
            }
            if avail == 0 && !any {
                return Err(ProtectError::Format("no ciphertext after the IV"));
            }
            let (blocks, _) = Array::slice_as_chunks_mut(&mut buf[..avail]);
            dec.decrypt_blocks(blocks);
            let pad = *buf[..avail].last().ok_or(ProtectError::Padding)? as usize;
            if pad == 0 || pad > 16 || pad > avail || !buf[avail - pad..avail].iter().all(|&b| b as usize == pad) {
                return Err(ProtectError::Padding);
            }
            output.write_all(&buf[..avail - pad])?;
            output.flush()?;
            return Ok(total + (avail - pad) as u64);
        }
        any = true;
        // Decrypt all but the last block; keep it for the next round.
        let keep = 16;
        let ready = avail - keep;
        let (blocks, _) = Array::slice_as_chunks_mut(&mut buf[..ready]);
        dec.decrypt_blocks(blocks);
        output.write_all(&buf[..ready])?;
        total += ready as u64;
        buf.copy_within(ready..avail, 0);
        held = keep;
    }
}

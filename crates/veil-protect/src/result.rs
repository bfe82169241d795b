//! iExec's encrypted result (as `iexec result decrypt` of the iexec SDK reads it):
//! `encrypted-iexec_out.zip` holds `iexec_out.zip.aes` (the result zip under AES-256-CBC with a random
//! key, IV first, PKCS#7) and `aes-key.rsa` (that raw 32-byte key under the beneficiary's RSA public
//! key, PKCS#1 v1.5, raw bytes).

use crate::dataset::{DatasetKey, decrypt, encrypt};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use std::io::{Read, Write};

/// The SDK's limits on the two entries.
pub const MAX_KEY_ENTRY: u64 = 1_000;
pub const MAX_AES_ENTRY: u64 = 1_000_000_000;
const KEY_ENTRY: &str = "aes-key.rsa";
const AES_ENTRY: &str = "iexec_out.zip.aes";

#[derive(Debug, thiserror::Error)]
pub enum ResultCryptoError {
    #[error("not an RSA key in PEM: {0}")]
    Key(String),
    #[error("cannot generate an RSA key: {0}")]
    Generate(String),
    #[error("not an encrypted result: {0}")]
    Format(String),
    #[error("this private key does not open the result (it was encrypted for another beneficiary's key)")]
    WrongKey,
    #[error(transparent)]
    Protect(#[from] crate::ProtectError),
}

/// A new RSA key pair: (private key, PKCS#8 PEM; public key, SPKI PEM). The SDK uses 4,096 bits.
pub fn generate_keypair(bits: usize) -> Result<(String, String), ResultCryptoError> {
    let private =
        RsaPrivateKey::new(&mut rand::thread_rng(), bits).map_err(|e| ResultCryptoError::Generate(e.to_string()))?;
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|e| ResultCryptoError::Generate(e.to_string()))?;
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| ResultCryptoError::Generate(e.to_string()))?;
    Ok((private_pem.to_string(), public_pem))
}

fn public_key(pem: &str) -> Result<RsaPublicKey, ResultCryptoError> {
    RsaPublicKey::from_public_key_pem(pem.trim()).map_err(|e| ResultCryptoError::Key(e.to_string()))
}

/// Reads PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM.
fn private_key(pem: &str) -> Result<RsaPrivateKey, ResultCryptoError> {
    let pem = pem.trim();
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| ResultCryptoError::Key(e.to_string()))
}

/// Encrypts a result zip for the holder of `public_pem`.
pub fn encrypt_result(result_zip: &[u8], public_pem: &str) -> Result<Vec<u8>, ResultCryptoError> {
    let public = public_key(public_pem)?;
    let key = DatasetKey::random();
    let mut aes = Vec::with_capacity(result_zip.len() + 32);
    encrypt(&key, result_zip, &mut aes)?;
    let wrapped = public
        .encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, &key.0)
        .map_err(|e| ResultCryptoError::Key(e.to_string()))?;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [(AES_ENTRY, &aes), (KEY_ENTRY, &wrapped)] {
        z.start_file(name, o).map_err(|e| ResultCryptoError::Format(e.to_string()))?;
        z.write_all(bytes).map_err(crate::ProtectError::Io)?;
    }
    Ok(z.finish().map_err(|e| ResultCryptoError::Format(e.to_string()))?.into_inner())
}

fn entry(z: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str, max: u64) -> Result<Vec<u8>, ResultCryptoError> {
    let f = z.by_name(name).map_err(|_| ResultCryptoError::Format(format!("no `{name}` inside")))?;
    if f.size() > max {
        return Err(ResultCryptoError::Format(format!("`{name}` is {} bytes, more than {max}", f.size())));
    }
    let mut out = vec![];
    f.take(max + 1).read_to_end(&mut out).map_err(crate::ProtectError::Io)?;
    if out.len() as u64 > max {
        return Err(ResultCryptoError::Format(format!("`{name}` is larger than {max} bytes")));
    }
    Ok(out)
}

/// Decrypts an `encrypted-iexec_out.zip` with the beneficiary's private key; returns the result zip.
pub fn decrypt_result(encrypted_zip: &[u8], private_pem: &str) -> Result<Vec<u8>, ResultCryptoError> {
    let private = private_key(private_pem)?;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(encrypted_zip))
        .map_err(|e| ResultCryptoError::Format(format!("not a zip archive ({e})")))?;
    let wrapped = entry(&mut z, KEY_ENTRY, MAX_KEY_ENTRY)?;
    let aes = entry(&mut z, AES_ENTRY, MAX_AES_ENTRY)?;
    let raw = private.decrypt(Pkcs1v15Encrypt, &wrapped).map_err(|_| ResultCryptoError::WrongKey)?;
    let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| ResultCryptoError::WrongKey)?;
    let mut out = Vec::with_capacity(aes.len());
    decrypt(&DatasetKey(key), aes.as_slice(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_beneficiarys_key_decrypts_and_the_entries_are_the_sdks() {
        let (private, public) = generate_keypair(1024).unwrap();
        let (other, _) = generate_keypair(1024).unwrap();
        assert!(private.contains("BEGIN PRIVATE KEY") && public.contains("BEGIN PUBLIC KEY"));
        let zip = b"PK fake result zip bytes".repeat(100);
        let enc = encrypt_result(&zip, &public).unwrap();
        assert_eq!(decrypt_result(&enc, &private).unwrap(), zip);
        assert!(matches!(
            decrypt_result(&enc, &other),
            Err(ResultCryptoError::WrongKey) | Err(ResultCryptoError::Protect(_))
        ));
        let mut names: Vec<String> =
            zip::ZipArchive::new(std::io::Cursor::new(&enc[..])).unwrap().file_names().map(String::from).collect();
        names.sort();
        assert_eq!(names, ["aes-key.rsa", "iexec_out.zip.aes"]);
        assert!(matches!(decrypt_result(b"not a zip", &private), Err(ResultCryptoError::Format(_))));
        assert!(matches!(encrypt_result(&zip, "not a key"), Err(ResultCryptoError::Key(_))));
    }

    #[test]
    fn a_pkcs1_private_key_is_read_too() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let (private, public) = generate_keypair(1024).unwrap();
        let k = RsaPrivateKey::from_pkcs8_pem(&private).unwrap();
        let pkcs1 = k.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
        let enc = encrypt_result(b"abc", &public).unwrap();
        assert_eq!(decrypt_result(&enc, &pkcs1).unwrap(), b"abc");
    }
}

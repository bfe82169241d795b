//! DataProtector payloads: a JSON object becomes a zip with one entry per key (nested objects as
//! folders), each scalar Borsh-encoded: strings as `string`, booleans as `bool`, numbers as `f64`
//! (integers outside ±2^53 as `i128`, as JavaScript's bigint would be).

use serde_json::Value;
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the protected data must be a JSON object with at least one key")]
    NotObject,
    #[error(
        "`{0}`: arrays and null cannot be protected (DataProtector accepts strings, numbers, booleans and objects)"
    )]
    Unsupported(String),
    #[error("zip: {0}")]
    Zip(String),
}

fn encode(v: &Value, path: &str) -> Result<Vec<u8>, PayloadError> {
    Ok(match v {
        Value::String(s) => crate::borsh::string(s),
        Value::Bool(b) => crate::borsh::bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if i.unsigned_abs() > (1u64 << 53) => crate::borsh::i128(i as i128),
            (_, Some(f)) => crate::borsh::f64(f),
            _ => match n.as_u64() {
                Some(u) => crate::borsh::i128(u as i128),
                None => return Err(PayloadError::Unsupported(path.into())),
            },
        },
        _ => return Err(PayloadError::Unsupported(path.into())),
    })
}

fn add(
    zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
    obj: &serde_json::Map<String, Value>,
    prefix: &str,
) -> Result<(), PayloadError> {
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let z = |e: zip::result::ZipError| PayloadError::Zip(e.to_string());
    for (k, v) in obj {
        if k.is_empty() || k.contains('/') || k == "." || k == ".." {
            return Err(PayloadError::Unsupported(format!("{prefix}{k}")));
        }
        let path = format!("{prefix}{k}");
        match v {
            Value::Object(inner) => {
                zip.add_directory(format!("{path}/"), opts).map_err(z)?;
                add(zip, inner, &format!("{path}/"))?;
            }
            _ => {
                let bytes = encode(v, &path)?;
                zip.start_file(path, opts).map_err(z)?;
                zip.write_all(&bytes).map_err(|e| PayloadError::Zip(e.to_string()))?;
            }
        }
    }
    Ok(())
}

/// The zip bytes of a DataProtector payload for `data`.
pub fn zip_json(data: &Value) -> Result<Vec<u8>, PayloadError> {
    let obj = data.as_object().filter(|o| !o.is_empty()).ok_or(PayloadError::NotObject)?;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    add(&mut zip, obj, "")?;
    let cursor = zip.finish().map_err(|e| PayloadError::Zip(e.to_string()))?;
    Ok(cursor.into_inner())
}

//! HTTP routes: `POST /blobs` (streamed body) → `{id, size}`; `GET /blobs/{id}` streams a verified
//! blob; `HEAD /blobs/{id}` tells whether it is there; `GET|HEAD /ipfs/{cid}` the same blob named by
//! its CIDv1 (iExec's IPFS gateway path).

use crate::store::{BlobInfo, BlobStore, StorageError, check_id};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            StorageError::BadId(_) | StorageError::BadCid(_) => (StatusCode::BAD_REQUEST, "malformed"),
            StorageError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            StorageError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            StorageError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
            StorageError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        (status, Json(serde_json::json!({ "error": self.to_string(), "kind": kind }))).into_response()
    }
}

/// The storage routes, to serve alone or merge into another router.
pub fn router(store: Arc<BlobStore>) -> Router {
    Router::new()
        .route("/blobs", post(upload))
        .route("/blobs/{id}", get(download).head(head))
        .route("/ipfs/{cid}", get(download_cid).head(head_cid))
        .layer(DefaultBodyLimit::disable())
        .with_state(store)
}

async fn upload(State(store): State<Arc<BlobStore>>, body: Body) -> Result<Json<BlobInfo>, StorageError> {
    let tmp = store.temp_path();
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        let mut h = Sha256::new();
        let mut size = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?;
            size += chunk.len() as u64;
            if size > store.max_size {
                return Err(StorageError::TooLarge { limit: store.max_size });
            }
            h.update(&chunk);
            f.write_all(&chunk).await?;
        }
        f.sync_all().await?;
        Ok::<_, StorageError>((h.finalize().into(), size))
    }
    .await;
    match result {
        Ok((digest, size)) => {
            let s = store.clone();
            let info = tokio::task::spawn_blocking(move || s.commit(&tmp, digest, size))
                .await
                .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))??;
            Ok(Json(info))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

async fn verified(store: &Arc<BlobStore>, id: &str) -> Result<u64, StorageError> {
    check_id(id)?;
    let (s, i) = (store.clone(), id.to_string());
    tokio::task::spawn_blocking(move || s.verify(&i))
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?
}

async fn head(State(store): State<Arc<BlobStore>>, Path(id): Path<String>) -> Result<Response, StorageError> {
    check_id(&id)?;
    let meta = tokio::fs::metadata(store.path_of(&id)?).await.map_err(|_| StorageError::NotFound(id.clone()))?;
    Ok(([(header::CONTENT_LENGTH, meta.len().to_string())], "").into_response())
}

/// The blob id a CID names (its path may go on, as gateways allow: `/ipfs/<cid>` only here).
fn id_of_cid(cid: &str) -> Result<String, StorageError> {
    Ok(hex::encode(crate::cid::digest_of(cid)?))
}

async fn head_cid(store: State<Arc<BlobStore>>, Path(cid): Path<String>) -> Result<Response, StorageError> {
    head(store, Path(id_of_cid(&cid)?)).await
}

async fn download_cid(store: State<Arc<BlobStore>>, Path(cid): Path<String>) -> Result<Response, StorageError> {
    download(store, Path(id_of_cid(&cid)?)).await
}

async fn download(State(store): State<Arc<BlobStore>>, Path(id): Path<String>) -> Result<Response, StorageError> {
    let size = verified(&store, &id).await?;
    let f = tokio::fs::File::open(store.path_of(&id)?).await?;
    let stream = futures_util::stream::unfold(f, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [(header::CONTENT_LENGTH, size.to_string()), (header::CONTENT_TYPE, "application/octet-stream".to_string())],
        Body::from_stream(stream),
    )
        .into_response())
}

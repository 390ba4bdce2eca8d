//! A service over raw bytes with `BytesCodec`, named by path or by string.

use bytes::Bytes;
use weft::Status;

#[weft::service(codec = weft::BytesCodec)]
pub trait Blobs {
    async fn put(&self, blob: Bytes) -> Result<Bytes, Status>;
}

#[weft::service(codec = "::weft::BytesCodec")]
pub trait Blobs2 {
    async fn put(&self, blob: Bytes) -> Result<Bytes, Status>;
}

struct Impl;

impl Blobs for Impl {
    async fn put(&self, blob: Bytes) -> Result<Bytes, Status> {
        Ok(blob)
    }
}

fn main() {
    let _ = weft::Server::builder().add_service(BlobsServer::new(Impl));
    let _ = |client: BlobsClient| async move { client.put(Bytes::from_static(b"raw")).await };
    let _ = |client: Blobs2Client| async move { client.put(Bytes::new()).await };
}

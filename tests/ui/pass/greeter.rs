//! The trait from issue 4, every interaction model, as written there.

use futures_util::Stream;
use weft::{Status, Streaming};

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Greets.
#[weft::service(package = "greet")]
pub trait Greeter {
    /// request/response
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status>;
    /// fire-and-forget
    async fn record(&self, event: HelloRequest);
    /// request/stream
    async fn list(&self, req: HelloRequest) -> Result<impl Stream<Item = Result<HelloReply, Status>>, Status>;
    /// channel
    async fn chat(
        &self,
        msgs: Streaming<HelloRequest>,
    ) -> Result<impl Stream<Item = Result<HelloReply, Status>>, Status>;
    /// client streaming
    async fn upload(&self, chunks: Streaming<HelloRequest>) -> Result<HelloReply, Status>;
}

struct Impl;

impl Greeter for Impl {
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status> {
        Ok(HelloReply { message: req.name })
    }
    async fn record(&self, _event: HelloRequest) {}
    async fn list(
        &self,
        req: HelloRequest,
    ) -> Result<impl Stream<Item = Result<HelloReply, Status>> + 'static, Status> {
        Ok(futures_util::stream::iter(vec![Ok(HelloReply { message: req.name })]))
    }
    async fn chat(
        &self,
        msgs: Streaming<HelloRequest>,
    ) -> Result<impl Stream<Item = Result<HelloReply, Status>> + 'static, Status> {
        use futures_util::StreamExt;
        Ok(msgs.map(|m| m.map(|m| HelloReply { message: m.name })))
    }
    async fn upload(&self, mut chunks: Streaming<HelloRequest>) -> Result<HelloReply, Status> {
        let mut n = 0;
        while chunks.message().await?.is_some() {
            n += 1;
        }
        Ok(HelloReply { message: n.to_string() })
    }
}

fn main() {
    let _server = weft::Server::builder().add_service(GreeterServer::new(Impl));
    let _ = |client: GreeterClient| async move {
        let _: HelloReply = client.say_hello(HelloRequest::default()).await?;
        client.record(weft::Request::new(HelloRequest::default())).await?;
        let _: Streaming<HelloReply> = client.list(HelloRequest::default()).await?;
        let _: Streaming<HelloReply> = client.chat(futures_util::stream::iter(vec![HelloRequest::default()])).await?;
        let _: HelloReply = client.upload(futures_util::stream::iter(vec![HelloRequest::default()])).await?;
        Ok::<(), Status>(())
    };
}

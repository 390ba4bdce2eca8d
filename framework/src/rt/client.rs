use crate::{Call, Payload, PayloadStream, Status};
use bytes::Bytes;

/// A handle for making requests on one connection. Cheap to clone; every clone shares the
/// connection, and many calls run on it at once.
#[derive(Clone, Debug)]
pub struct Client {
    _todo: (),
}

impl Client {
    /// Connects over TCP with the default configuration.
    pub async fn connect(_addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Status> {
        todo!()
    }

    /// Request/response: one request, one response.
    pub async fn request_response(&self, _call: Call, _data: Bytes) -> Result<Payload, Status> {
        todo!()
    }

    /// Fire-and-forget: resolves once the request is handed to the connection.
    pub async fn fire_and_forget(&self, _call: Call, _data: Bytes) -> Result<(), Status> {
        todo!()
    }

    /// Request/stream: one request, a stream of responses.
    pub async fn request_stream(&self, _call: Call, _data: Bytes) -> Result<PayloadStream, Status> {
        todo!()
    }

    /// Channel: a stream of requests each way. The first item of `messages` rides in the
    /// REQUEST_CHANNEL frame.
    pub async fn request_channel<S>(&self, _call: Call, _messages: S) -> Result<PayloadStream, Status>
    where
        S: futures_core::Stream<Item = Payload> + Send + 'static,
    {
        todo!()
    }
}

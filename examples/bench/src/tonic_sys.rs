//! gRPC over HTTP/2 with tonic 0.14 and prost, default configuration.

use crate::common::Result;
use crate::messages::bench_client::BenchClient;
use crate::messages::bench_server::{Bench, BenchServer};
use crate::messages::{Msg, StreamReq, produce};
use crate::runner::System;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

struct Service;

#[tonic::async_trait]
impl Bench for Service {
    async fn unary(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type ServerStreamStream = BoxStream<'static, Result<Msg, Status>>;

    async fn server_stream(&self, request: Request<StreamReq>) -> Result<Response<Self::ServerStreamStream>, Status> {
        Ok(Response::new(produce(request.into_inner())))
    }

    type ChannelStream = tonic::Streaming<Msg>;

    async fn channel(&self, request: Request<tonic::Streaming<Msg>>) -> Result<Response<Self::ChannelStream>, Status> {
        // Echo: every message received is sent back.
        Ok(Response::new(request.into_inner()))
    }
}

/// Serves on `addr`, printing the port. `Server::serve` would set TCP_NODELAY on accepted
/// sockets; `serve_with_incoming` leaves that to the incoming, so it is set there alike.
pub async fn serve(addr: SocketAddr) -> Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::bind(addr)?.with_nodelay(Some(true));
    crate::announce(incoming.local_addr()?);
    Server::builder().add_service(BenchServer::new(Service)).serve_with_incoming(incoming).await?;
    Ok(())
}

pub struct Tonic;

fn request_stream(mut rx: mpsc::Receiver<Msg>) -> impl futures_util::Stream<Item = Msg> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl System for Tonic {
    type Conn = BenchClient<Channel>;
    type Stream = tonic::Streaming<Msg>;
    type Chan = (mpsc::Sender<Msg>, tonic::Streaming<Msg>);

    async fn connect(addr: SocketAddr) -> Result<Self::Conn> {
        Ok(BenchClient::connect(format!("http://{addr}")).await?)
    }

    async fn unary(conn: &Self::Conn, data: Bytes) -> Result<()> {
        conn.clone().unary(Msg { data }).await?;
        Ok(())
    }

    type Shared = BenchClient<Channel>;

    async fn shared(conn: &Self::Conn) -> Result<Self::Shared> {
        Ok(conn.clone())
    }

    async fn unary_shared(conn: &Self::Shared, data: Bytes) -> Result<()> {
        Tonic::unary(conn, data).await
    }

    async fn stream(conn: &Self::Conn, count: u64, size: usize, hold: bool) -> Result<Self::Stream> {
        Ok(conn.clone().server_stream(StreamReq { count, size: size as u32, hold }).await?.into_inner())
    }

    async fn next(stream: &mut Self::Stream) -> Result<bool> {
        Ok(stream.message().await?.is_some())
    }

    async fn channel(conn: &Self::Conn, data: Bytes) -> Result<Self::Chan> {
        let (tx, rx) = mpsc::channel(1);
        tx.send(Msg { data }).await?;
        let mut replies = conn.clone().channel(request_stream(rx)).await?.into_inner();
        replies.message().await?.ok_or("the channel ended")?;
        Ok((tx, replies))
    }

    async fn ping(chan: &mut Self::Chan, data: Bytes) -> Result<()> {
        chan.0.send(Msg { data }).await?;
        chan.1.message().await?.ok_or("the channel ended")?;
        Ok(())
    }
}

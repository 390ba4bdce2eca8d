//! Every accepted method form, with and without a context, and the attribute's keys.
#![deny(warnings, missing_docs)]

use futures_util::Stream;
use weft::{Context, Status, Streaming};

/// A message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct M {
    /// Data.
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

/// Helper so that default bodies have something to return.
pub trait Noop {}

/// Every model with a `Context`, plus the odd corners.
#[weft::service(name = "Forms", package = "acme.forms.v1")]
pub trait AllForms: Noop {
    /// request/response with a context
    async fn unary(&self, ctx: Context, req: M) -> Result<M, Status>;
    /// fire-and-forget with a context, explicit `()` return
    async fn fnf(&self, ctx: Context, req: M) -> ();
    /// request/stream with a context
    async fn stream(
        &self,
        ctx: Context,
        req: M,
    ) -> Result<impl Stream<Item = Result<M, Status>> + Send + 'static, Status>;
    /// channel with a context
    async fn chat(&self, ctx: Context, reqs: Streaming<M>) -> Result<impl Stream<Item = Result<M, Status>>, Status>;
    /// client streaming with a context
    async fn upload(&self, ctx: weft::Context, reqs: weft::Streaming<M>) -> ::core::result::Result<M, weft::Status>;
    /// An empty request, and a default body with a `mut` parameter.
    async fn ping(&self, mut req: ()) -> Result<(), Status> {
        let _ = &mut req;
        Ok(req)
    }
    /// A keyword as a name: the route is `acme.forms.v1.Forms/Type`.
    async fn r#type(&self, req: M) -> Result<M, Status>;
    /// Deprecated methods stay callable; the attribute follows the client method.
    #[deprecated = "use unary"]
    async fn old(&self, req: M) -> Result<M, Status>;
    /// A method compiled out: no route, no client method.
    #[cfg(any())]
    async fn gone(&self, req: M) -> Result<M, Status>;
}

struct Impl;

impl Noop for Impl {}

#[allow(deprecated)]
impl AllForms for Impl {
    async fn unary(&self, ctx: Context, req: M) -> Result<M, Status> {
        let _ = (ctx.route(), ctx.is_cancelled(), ctx.metadata());
        Ok(req)
    }
    async fn fnf(&self, _ctx: Context, _req: M) {}
    async fn stream(&self, _ctx: Context, req: M) -> Result<impl Stream<Item = Result<M, Status>> + 'static, Status> {
        Ok(futures_util::stream::iter(vec![Ok(req)]))
    }
    async fn chat(
        &self,
        _ctx: Context,
        reqs: Streaming<M>,
    ) -> Result<impl Stream<Item = Result<M, Status>> + 'static, Status> {
        Ok(reqs)
    }
    async fn upload(&self, _ctx: Context, mut reqs: Streaming<M>) -> Result<M, Status> {
        Ok(reqs.message().await?.unwrap_or_default())
    }
    async fn r#type(&self, req: M) -> Result<M, Status> {
        Ok(req)
    }
    async fn old(&self, req: M) -> Result<M, Status> {
        Ok(req)
    }
}

/// No package: routes are `Bare/Call`.
#[weft::service]
trait Bare {
    async fn call(&self, req: M) -> Result<M, Status>;
}

impl Bare for Impl {
    async fn call(&self, req: M) -> Result<M, Status> {
        Ok(req)
    }
}

fn main() {
    use weft::Service;
    let server = AllFormsServer::new(Impl);
    assert_eq!(
        server.routes(),
        [
            "acme.forms.v1.Forms/Unary",
            "acme.forms.v1.Forms/Fnf",
            "acme.forms.v1.Forms/Stream",
            "acme.forms.v1.Forms/Chat",
            "acme.forms.v1.Forms/Upload",
            "acme.forms.v1.Forms/Ping",
            "acme.forms.v1.Forms/Type",
            "acme.forms.v1.Forms/Old",
        ]
    );
    assert_eq!(BareServer::new(Impl).routes(), ["Bare/Call"]);
    let _ = weft::Server::builder()
        .add_service(server.clone())
        .add_service(BareServer::from_arc(std::sync::Arc::new(Impl)));
    #[allow(deprecated)]
    let _ = |client: AllFormsClient| async move {
        client.unary(M::default()).await?;
        client.fnf(M::default()).await?;
        client.stream(weft::Request::new(M::default())).await?;
        client.chat(futures_util::stream::iter(vec![M::default()])).await?;
        client.upload(weft::Request::new(futures_util::stream::iter(vec![M::default()]))).await?;
        client.ping(()).await?;
        client.r#type(M::default()).await?;
        client.old(M::default()).await?;
        let _: &weft::Client = client.inner();
        Ok::<(), Status>(())
    };
    let _ = |client: weft::Client| BareClient::from(client);
}

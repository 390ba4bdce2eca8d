//! Types of the user's own called `Context` and `Status`, named by paths that do not lead to
//! Weft, are messages like any other; Weft's are recognised by every path that leads to them.

/// Messages that happen to share Weft's names.
pub mod messages {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Context {
        #[prost(string, tag = "1")]
        pub user: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(bool, tag = "1")]
        pub healthy: bool,
    }
}

#[weft::service(package = "names")]
pub trait Names {
    /// The one parameter, of the user's own `Context` type: the request message.
    async fn login(&self, req: messages::Context) -> Result<messages::Status, weft::Status>;
    /// Weft's, by each of its paths.
    async fn check(&self, ctx: ::weft::Context, req: messages::Context) -> Result<messages::Status, ::weft::Status>;
    async fn typed(&self, ctx: weft::typed::Context, req: ()) -> Result<(), weft::Status>;
    async fn watch(
        &self,
        ctx: weft::Context,
        req: crate::messages::Context,
    ) -> Result<impl futures_util::Stream<Item = Result<messages::Status, weft::Status>>, weft::Status>;
}

struct Impl;

impl Names for Impl {
    async fn login(&self, req: messages::Context) -> Result<messages::Status, weft::Status> {
        Ok(messages::Status { healthy: !req.user.is_empty() })
    }

    async fn check(&self, _ctx: weft::Context, req: messages::Context) -> Result<messages::Status, weft::Status> {
        self.login(req).await
    }

    async fn typed(&self, _ctx: weft::Context, _req: ()) -> Result<(), weft::Status> {
        Ok(())
    }

    async fn watch(
        &self,
        _ctx: weft::Context,
        _req: messages::Context,
    ) -> Result<impl futures_util::Stream<Item = Result<messages::Status, weft::Status>> + Send + 'static, weft::Status>
    {
        Ok(futures_util::stream::empty())
    }
}

fn main() {
    let _ = weft::Server::builder().add_service(NamesServer::new(Impl));
    let _ = |client: NamesClient| async move {
        let _: Result<messages::Status, weft::Status> = client.login(messages::Context::default()).await;
    };
}

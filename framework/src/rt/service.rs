//! [`Service`], a handler that knows its routes (what generated servers implement), and what it
//! hands a server's route table for each route: for a generated service, the method itself, a
//! [`Handler`] of its own; for any other service or handler, the whole handler, which
//! dispatches by route as it likes.
//!
//! A connection looks a request's route up once per distinct metadata block and keeps what it
//! found (see [`RouteCache`](super::routing::RouteCache)). With the method in the table, that
//! look-up is the request's whole dispatch: the generated service's own `match` on the route
//! (its [`Handler`] implementation, still there for whoever calls it directly) is not run again
//! on every request.

use super::handler::{Handler, wrong_model};
use crate::{BoxFuture, Call, PayloadStream, Response, Responses};
use bytes::Bytes;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// A [`Handler`] that knows which routes it serves; what generated servers implement.
pub trait Service: Handler {
    /// The routes this service answers, e.g. `["greet.Greeter/SayHello", ...]`.
    fn routes(&self) -> &'static [&'static str];

    /// Hands a server what serves each route: by default the service itself, under each of
    /// [`Service::routes`]. A generated service hands over each method instead, so that the
    /// server dispatches a request to its method by route once, not once to the service and
    /// again inside it. Not part of the API: generated code overrides it, nothing else should.
    #[doc(hidden)]
    fn __register(self, table: &mut MethodTable)
    where
        Self: Sized,
    {
        table.handler(self.routes(), Arc::new(self));
    }
}

/// The routes a service serves and what serves each, as [`Service::__register`] hands them to
/// a server. Generated services name their codec's data MIME type with
/// [`MethodTable::data_mime`], then add one entry per method that their `cfg`s leave in, with
/// [`MethodTable::unary`] and its siblings.
#[derive(Default)]
pub struct MethodTable {
    pub(crate) entries: Vec<Entry>,
    /// What the methods added from now on decode (see [`MethodTable::data_mime`]).
    data_mime: Option<&'static str>,
}

/// One route of a [`MethodTable`]: what serves it, and the data MIME type it reads (`None`: any,
/// as a hand-written handler does).
pub(crate) struct Entry {
    pub(crate) route: &'static str,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) data_mime: Option<&'static str>,
}

impl fmt::Debug for MethodTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| (e.route, e.data_mime))).finish()
    }
}

impl MethodTable {
    /// The methods added from now on decode data of the MIME type `mime` (their codec's
    /// [`DataMime::MIME`](crate::DataMime::MIME)): a connection whose SETUP announced another
    /// gets an ERROR for each of their calls.
    pub fn data_mime(&mut self, mime: &'static str) {
        self.data_mime = Some(mime);
    }

    /// A request/response method at `route`: `serve` answers its calls with `service`.
    pub fn unary<S, F>(&mut self, route: &'static str, service: &Arc<S>, serve: F)
    where
        S: Send + Sync + 'static,
        F: Fn(&Arc<S>, Call, Bytes) -> Response + Send + Sync + 'static,
    {
        self.method::<Unary, S, F>(route, service, serve);
    }

    /// A fire-and-forget method at `route`.
    pub fn fire_and_forget<S, F>(&mut self, route: &'static str, service: &Arc<S>, serve: F)
    where
        S: Send + Sync + 'static,
        F: Fn(&Arc<S>, Call, Bytes) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.method::<FireAndForget, S, F>(route, service, serve);
    }

    /// A request/stream method at `route`.
    pub fn stream<S, F>(&mut self, route: &'static str, service: &Arc<S>, serve: F)
    where
        S: Send + Sync + 'static,
        F: Fn(&Arc<S>, Call, Bytes) -> Responses + Send + Sync + 'static,
    {
        self.method::<Stream, S, F>(route, service, serve);
    }

    /// A channel (or client-streaming) method at `route`.
    pub fn channel<S, F>(&mut self, route: &'static str, service: &Arc<S>, serve: F)
    where
        S: Send + Sync + 'static,
        F: Fn(&Arc<S>, Call, PayloadStream) -> Responses + Send + Sync + 'static,
    {
        self.method::<Channel, S, F>(route, service, serve);
    }

    fn method<M, S, F>(&mut self, route: &'static str, service: &Arc<S>, serve: F)
    where
        Method<M, S, F>: Handler,
    {
        let method = Method { service: service.clone(), serve, model: PhantomData };
        self.entries.push(Entry { route, handler: Arc::new(method), data_mime: self.data_mime });
    }

    /// `handler` serves every one of `routes` itself, whatever the data MIME type: it reads the
    /// data as it likes.
    pub(crate) fn handler(&mut self, routes: &[&'static str], handler: Arc<dyn Handler>) {
        self.entries.extend(routes.iter().map(|route| Entry { route, handler: handler.clone(), data_mime: None }));
    }
}

/// One method of a service: the implementation, and the function that serves a call of the
/// method with it. `F` is the generated function's own (zero-sized) type, not a pointer, so
/// the call through this handler's vtable lands in the method's code with no second indirect
/// call. A request of another interaction model gets the `UNIMPLEMENTED` the service's own
/// `Handler` answers it with; `M` names the method's model.
struct Method<M, S, F> {
    service: Arc<S>,
    serve: F,
    model: PhantomData<fn() -> M>,
}

// The models, as `Method`'s `M`; never built.
enum Unary {}
enum FireAndForget {}
enum Stream {}
enum Channel {}

// What a method answers a request of a model other than its own with: what a generated
// service's `Handler` answers (`not_served`), for a route the service serves. Fire-and-forget
// has nobody to answer, so `Handler`'s default (drop the request) is left in place.

fn not_unary(call: &Call) -> Response {
    Response::ready(Err(wrong_model(call, "request/response")))
}

fn not_stream(call: &Call) -> Responses {
    Responses::once(Err(wrong_model(call, "request/stream")))
}

fn not_channel(call: &Call) -> Responses {
    Responses::once(Err(wrong_model(call, "channel")))
}

impl<S, F> Handler for Method<Unary, S, F>
where
    S: Send + Sync + 'static,
    F: Fn(&Arc<S>, Call, Bytes) -> Response + Send + Sync + 'static,
{
    fn request_response(&self, call: Call, data: Bytes) -> Response {
        (self.serve)(&self.service, call, data)
    }

    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        not_stream(&call)
    }

    fn request_channel(&self, call: Call, _messages: PayloadStream) -> Responses {
        not_channel(&call)
    }
}

impl<S, F> Handler for Method<FireAndForget, S, F>
where
    S: Send + Sync + 'static,
    F: Fn(&Arc<S>, Call, Bytes) -> BoxFuture<'static, ()> + Send + Sync + 'static,
{
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        not_unary(&call)
    }

    fn fire_and_forget(&self, call: Call, data: Bytes) -> BoxFuture<'static, ()> {
        (self.serve)(&self.service, call, data)
    }

    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        not_stream(&call)
    }

    fn request_channel(&self, call: Call, _messages: PayloadStream) -> Responses {
        not_channel(&call)
    }
}

impl<S, F> Handler for Method<Stream, S, F>
where
    S: Send + Sync + 'static,
    F: Fn(&Arc<S>, Call, Bytes) -> Responses + Send + Sync + 'static,
{
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        not_unary(&call)
    }

    fn request_stream(&self, call: Call, data: Bytes) -> Responses {
        (self.serve)(&self.service, call, data)
    }

    fn request_channel(&self, call: Call, _messages: PayloadStream) -> Responses {
        not_channel(&call)
    }
}

impl<S, F> Handler for Method<Channel, S, F>
where
    S: Send + Sync + 'static,
    F: Fn(&Arc<S>, Call, PayloadStream) -> Responses + Send + Sync + 'static,
{
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        not_unary(&call)
    }

    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        not_stream(&call)
    }

    fn request_channel(&self, call: Call, messages: PayloadStream) -> Responses {
        (self.serve)(&self.service, call, messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, Code, Payload, Server, Status, Streaming};
    use futures_util::StreamExt;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A method of every model, and one compiled out.
    #[crate::service(crate = "crate", codec = crate::BytesCodec, package = "t")]
    trait Models {
        async fn unary(&self, req: Bytes) -> Result<Bytes, Status>;
        async fn fire(&self, req: Bytes);
        async fn stream(&self, req: Bytes) -> Result<impl futures_core::Stream<Item = Result<Bytes, Status>>, Status>;
        async fn chat(
            &self,
            reqs: Streaming<Bytes>,
        ) -> Result<impl futures_core::Stream<Item = Result<Bytes, Status>>, Status>;
        async fn upload(&self, reqs: Streaming<Bytes>) -> Result<Bytes, Status>;
        #[cfg(any())]
        async fn gone(&self, req: Bytes) -> Result<Bytes, Status>;
    }

    /// Each method answers with its name, so that a test sees which one served a call.
    struct Impl(mpsc::UnboundedSender<Bytes>);

    fn named(method: &str, data: &[u8]) -> Bytes {
        Bytes::from([method.as_bytes(), b":", data].concat())
    }

    impl Models for Impl {
        async fn unary(&self, req: Bytes) -> Result<Bytes, Status> {
            Ok(named("unary", &req))
        }
        async fn fire(&self, req: Bytes) {
            let _ = self.0.send(named("fire", &req));
        }
        async fn stream(
            &self,
            req: Bytes,
        ) -> Result<impl futures_core::Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(futures_util::stream::iter([Ok(named("stream", &req)), Ok(named("stream", b"2"))]))
        }
        async fn chat(
            &self,
            reqs: Streaming<Bytes>,
        ) -> Result<impl futures_core::Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
            Ok(reqs.map(|m| Ok(named("chat", &m?))))
        }
        async fn upload(&self, mut reqs: Streaming<Bytes>) -> Result<Bytes, Status> {
            let mut all = Vec::new();
            while let Some(m) = reqs.message().await? {
                all.extend_from_slice(&m);
            }
            Ok(named("upload", &all))
        }
    }

    /// A hand-written handler, served beside the generated service: answers with the route.
    struct ByHand;

    impl Handler for ByHand {
        fn request_response(&self, call: Call, _: Bytes) -> Response {
            Response::ready(Ok(Payload::new(format!("by hand: {}", call.route()))))
        }
    }

    const ROUTES: [&str; 5] =
        ["t.Models/Unary", "t.Models/Fire", "t.Models/Stream", "t.Models/Chat", "t.Models/Upload"];

    fn service() -> (ModelsServer<Impl>, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ModelsServer::new(Impl(tx)), rx)
    }

    fn data(payload: Result<Payload, Status>) -> Bytes {
        payload.expect("an answer").data
    }

    #[tokio::test]
    async fn a_generated_service_hands_the_server_each_method_that_its_cfgs_leave_in() {
        let (server, _fired) = service();
        assert_eq!(Service::routes(&server), ROUTES);
        let mut table = MethodTable::default();
        server.__register(&mut table);
        assert_eq!(table.entries.iter().map(|e| e.route).collect::<Vec<_>>(), ROUTES);
        assert!(table.entries.iter().all(|e| e.data_mime == Some("application/octet-stream")), "{table:?}");
        // Each entry is the method itself, not the service: it serves its method whatever route
        // the call names, where the service's own `Handler` would match the route again.
        let method =
            |route: &str| table.entries.iter().find(|e| e.route == route).expect("in the table").handler.clone();
        let unary = method("t.Models/Unary");
        let answer = unary.request_response(Call::new("t.Models/Stream"), Bytes::from("x")).await;
        assert_eq!(data(answer), "unary:x");
        let mut stream = method("t.Models/Stream").request_stream(Call::new("t.Models/Unary"), Bytes::from("y"));
        assert_eq!(data(stream.next().await.expect("a message")), "stream:y");
    }

    #[tokio::test]
    async fn requests_reach_their_method_and_others_get_the_services_own_answers() {
        let (server, mut fired) = service();
        let running =
            Server::builder().add_service(server.clone()).add_handler(&["t.ByHand/A", "t.ByHand/B"], ByHand).build();
        let run = async {
            let client: Client = running.connect_in_memory().await.unwrap();
            let call = |route: &'static str| Call::new(route);
            let one = |text: &'static str| futures_util::stream::iter([Payload::new(text)]);
            let collect =
                |s: crate::PayloadStream| async move { s.map(|m| m.map(|p| p.data)).collect::<Vec<_>>().await };

            // Each route, with its model, reaches its method.
            assert_eq!(data(client.request_response(call("t.Models/Unary"), "a".into()).await), "unary:a");
            client.fire_and_forget(call("t.Models/Fire"), "b".into()).await.unwrap();
            assert_eq!(fired.recv().await.unwrap(), "fire:b");
            let stream = client.request_stream(call("t.Models/Stream"), "c".into()).await.unwrap();
            assert_eq!(collect(stream).await, [Ok("stream:c".into()), Ok("stream:2".into())]);
            let chat = client.request_channel(call("t.Models/Chat"), one("d")).await.unwrap();
            assert_eq!(collect(chat).await, [Ok(Bytes::from("chat:d"))]);
            let upload = client.request_channel(call("t.Models/Upload"), one("e")).await.unwrap();
            assert_eq!(collect(upload).await, [Ok(Bytes::from("upload:e"))]);
            // A hand-written handler still sees each of its routes.
            assert_eq!(data(client.request_response(call("t.ByHand/B"), "".into()).await), "by hand: t.ByHand/B");

            // A route served under another model, and a route nobody serves (the method compiled
            // out among them): the very statuses the service's own `Handler` answers with.
            let failed = |s: crate::PayloadStream| async move { collect(s).await.pop().unwrap().unwrap_err() };
            for route in ["t.Models/Stream", "t.Models/Fire", "t.Models/Upload", "t.Models/Gone", "t.No/Body"] {
                let own = server.request_response(call(route), Bytes::new()).await.unwrap_err();
                let got = client.request_response(call(route), Bytes::new()).await.unwrap_err();
                assert_eq!((got.code(), got.message()), (own.code(), own.message()), "{route}");
            }
            for route in ["t.Models/Unary", "t.Models/Chat", "t.Models/Gone", "t.No/Body"] {
                let own = server.request_stream(call(route), Bytes::new()).next().await.unwrap().unwrap_err();
                let got = failed(client.request_stream(call(route), Bytes::new()).await.unwrap()).await;
                assert_eq!((got.code(), got.message()), (own.code(), own.message()), "{route}");
            }
            let wrong = client.request_response(call("t.Models/Stream"), Bytes::new()).await.unwrap_err();
            assert_eq!(wrong.code(), Code::Unimplemented);
            assert_eq!(
                wrong.message(),
                "`t.Models/Stream` is not a request/response method; call it with the interaction model its service declares"
            );
            let gone = client.request_response(call("t.Models/Gone"), Bytes::new()).await.unwrap_err();
            assert_eq!((gone.code(), gone.message()), (Code::Unimplemented, "no method at route `t.Models/Gone`"));
            let wrong = failed(client.request_channel(call("t.Models/Unary"), one("")).await.unwrap()).await;
            assert_eq!(wrong.code(), Code::Unimplemented);
            assert!(wrong.message().starts_with("`t.Models/Unary` is not a channel method;"), "{wrong}");
            let gone = failed(client.request_channel(call("t.Models/Gone"), one("")).await.unwrap()).await;
            assert_eq!(gone.message(), "no method at route `t.Models/Gone`");
            // A fire-and-forget to a method of another model is dropped; the connection carries on.
            client.fire_and_forget(call("t.Models/Unary"), "f".into()).await.unwrap();
            assert_eq!(data(client.request_response(call("t.Models/Unary"), "g".into()).await), "unary:g");
            assert!(fired.try_recv().is_err());
        };
        tokio::time::timeout(Duration::from_secs(10), run).await.expect("in time");
    }
}

//! Services generated from `.proto` files by `build.rs` (`weft_codegen`): one model, one wire.
//!
//! - `mirror.proto`'s client calls a server written with `#[weft::service]` for the same
//!   service, and the trait's client calls the server generated from `mirror.proto`, over TCP
//!   and in memory;
//! - `acme/corners.proto` (nested packages, imports, well-known types, keywords, deprecation,
//!   fire-and-forget both ways) and `nopkg.proto` compile, and their methods are callable;
//! - client-only and server-only output compiles on its own.

use futures_util::{Stream, StreamExt};
use std::time::Duration;
use tokio::sync::mpsc;
use weft::{Client, Code, Context, Server, Service, Status, Streaming};

// Generated code is `pub` (as for any generated API), but these modules are private to the test
// binary, and not every message field has a comment.
#[allow(unreachable_pub, missing_docs, dead_code)]
pub(crate) mod mirror {
    ::weft::include_proto!("mirror");
}

#[allow(unreachable_pub, missing_docs, dead_code)]
pub(crate) mod acme {
    pub mod common {
        ::weft::include_proto!("acme.common");
    }
    pub mod corners {
        pub mod v1 {
            ::weft::include_proto!("acme.corners.v1");
        }
    }
}

#[allow(unreachable_pub, missing_docs, dead_code)]
mod bare {
    ::weft::include_proto!("_");
}

#[allow(unreachable_pub, missing_docs, dead_code)]
mod client_only {
    include!(concat!(env!("OUT_DIR"), "/client_only/mirror.rs"));
}

#[allow(unreachable_pub, missing_docs, dead_code)]
mod server_only {
    include!(concat!(env!("OUT_DIR"), "/server_only/mirror.rs"));
}

use mirror::Note;

fn note(text: &str, n: u64) -> Note {
    Note { text: text.into(), n }
}

const WAIT: Duration = Duration::from_secs(10);

/// The same service as `mirror.proto`, written as a trait.
mod by_trait {
    use super::Note;
    use futures_util::Stream;
    use weft::{Status, Streaming};

    /// Mirrors what it is sent.
    #[weft::service(package = "mirror")]
    pub(crate) trait Mirror {
        /// Replies with the request.
        async fn echo(&self, req: Note) -> Result<Note, Status>;
        /// Hands the note to the test.
        async fn drop(&self, req: Note);
        /// Replies with `n` notes.
        async fn count(&self, req: Note) -> Result<impl Stream<Item = Result<Note, Status>>, Status>;
        /// Upper-cases each note.
        async fn shout(&self, notes: Streaming<Note>) -> Result<impl Stream<Item = Result<Note, Status>>, Status>;
        /// Counts and sums.
        async fn sum(&self, notes: Streaming<Note>) -> Result<Note, Status>;
    }
}

/// What both implementations answer, so that either client can check either server.
fn echo(req: Note) -> Result<Note, Status> {
    if req.text == "fail" { Err(Status::not_found("no such note")) } else { Ok(req) }
}

fn count(req: Note) -> impl Stream<Item = Result<Note, Status>> + Send + 'static {
    futures_util::stream::iter((0..req.n).map(|n| Ok(note("", n))))
}

fn shout(notes: Streaming<Note>) -> impl Stream<Item = Result<Note, Status>> + Send + 'static {
    notes.map(|n| n.map(|n| note(&n.text.to_uppercase(), n.n)))
}

async fn sum(mut notes: Streaming<Note>) -> Result<Note, Status> {
    let (mut count, mut total) = (0, 0);
    while let Some(n) = notes.message().await? {
        count += 1;
        total += n.n;
    }
    Ok(note(&count.to_string(), total))
}

struct TraitImpl(mpsc::UnboundedSender<Note>);

impl by_trait::Mirror for TraitImpl {
    async fn echo(&self, req: Note) -> Result<Note, Status> {
        echo(req)
    }
    async fn drop(&self, req: Note) {
        let _ = self.0.send(req);
    }
    async fn count(&self, req: Note) -> Result<impl Stream<Item = Result<Note, Status>> + Send + 'static, Status> {
        Ok(count(req))
    }
    async fn shout(
        &self,
        notes: Streaming<Note>,
    ) -> Result<impl Stream<Item = Result<Note, Status>> + Send + 'static, Status> {
        Ok(shout(notes))
    }
    async fn sum(&self, notes: Streaming<Note>) -> Result<Note, Status> {
        sum(notes).await
    }
}

struct ProtoImpl(mpsc::UnboundedSender<Note>);

impl mirror::Mirror for ProtoImpl {
    async fn echo(&self, ctx: Context, request: Note) -> Result<Note, Status> {
        assert_eq!(ctx.route(), "mirror.Mirror/Echo");
        echo(request)
    }
    async fn drop(&self, _ctx: Context, request: Note) {
        let _ = self.0.send(request);
    }
    async fn count(
        &self,
        _ctx: Context,
        request: Note,
    ) -> Result<impl Stream<Item = Result<Note, Status>> + Send + 'static, Status> {
        Ok(count(request))
    }
    async fn shout(
        &self,
        _ctx: Context,
        request: Streaming<Note>,
    ) -> Result<impl Stream<Item = Result<Note, Status>> + Send + 'static, Status> {
        Ok(shout(request))
    }
    async fn sum(&self, _ctx: Context, request: Streaming<Note>) -> Result<Note, Status> {
        sum(request).await
    }
}

async fn all(mut s: Streaming<Note>) -> Vec<Note> {
    let mut out = Vec::new();
    while let Some(n) = s.message().await.expect("the stream ends without error") {
        out.push(n);
    }
    out
}

/// One client's view of the service, whichever way client and server were written.
macro_rules! exercise {
    ($client:expr, $dropped:expr, $what:expr) => {{
        let (client, dropped, what) = (&$client, &mut $dropped, $what);
        assert_eq!(client.echo(note("hi", 7)).await.unwrap_or_else(|e| panic!("{what}: {e}")), note("hi", 7), "{what}");
        let err = client.echo(note("fail", 0)).await.expect_err(what);
        assert_eq!((err.code(), err.message()), (Code::NotFound, "no such note"), "{what}");

        client.drop(note("dropped", 1)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = tokio::time::timeout(WAIT, dropped.recv()).await.expect("fire-and-forget arrives in time");
        assert_eq!(got, Some(note("dropped", 1)), "{what}");

        let counted = all(client.count(note("", 3)).await.unwrap()).await;
        assert_eq!(counted.iter().map(|n| n.n).collect::<Vec<_>>(), [0, 1, 2], "{what}");

        let notes = futures_util::stream::iter(vec![note("a", 1), note("b", 2)]);
        assert_eq!(all(client.shout(notes).await.unwrap()).await, [note("A", 1), note("B", 2)], "{what}");

        let notes = futures_util::stream::iter(vec![note("x", 5), note("y", 6), note("z", 7)]);
        assert_eq!(client.sum(notes).await.unwrap(), note("3", 18), "{what}");
    }};
}

/// Serves `service` over TCP on 127.0.0.1 and in memory; hands back a client of each.
async fn connect(server: Server) -> (weft::RunningServer, Client, Client) {
    let running = server.bind("127.0.0.1:0").await.expect("bind");
    let tcp = Client::connect(running.local_addr()).await.expect("connect over TCP");
    let memory = server.connect_in_memory().await.expect("connect in memory");
    (running, tcp, memory)
}

#[test]
fn trait_and_proto_declare_the_same_routes() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let from_trait = by_trait::MirrorServer::new(TraitImpl(tx.clone()));
    let from_proto = mirror::MirrorServer::new(ProtoImpl(tx));
    assert_eq!(from_trait.routes(), from_proto.routes());
    assert_eq!(
        from_proto.routes(),
        ["mirror.Mirror/Echo", "mirror.Mirror/Drop", "mirror.Mirror/Count", "mirror.Mirror/Shout", "mirror.Mirror/Sum"]
    );
}

#[tokio::test]
async fn proto_client_calls_trait_server() {
    tokio::time::timeout(WAIT * 3, async {
        let (tx, mut dropped) = mpsc::unbounded_channel();
        let server = Server::builder().add_service(by_trait::MirrorServer::new(TraitImpl(tx))).build();
        let (running, tcp, memory) = connect(server).await;
        exercise!(mirror::MirrorClient::new(tcp), dropped, "proto client -> trait server, TCP");
        exercise!(mirror::MirrorClient::new(memory), dropped, "proto client -> trait server, in memory");
        running.shutdown().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn trait_client_calls_proto_server() {
    tokio::time::timeout(WAIT * 3, async {
        let (tx, mut dropped) = mpsc::unbounded_channel();
        let server = Server::builder().add_service(mirror::MirrorServer::new(ProtoImpl(tx))).build();
        let (running, tcp, memory) = connect(server).await;
        exercise!(by_trait::MirrorClient::new(tcp), dropped, "trait client -> proto server, TCP");
        exercise!(by_trait::MirrorClient::new(memory), dropped, "trait client -> proto server, in memory");
        running.shutdown().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn client_only_and_server_only_output_work_together() {
    tokio::time::timeout(WAIT, async {
        struct Impl(mpsc::UnboundedSender<Note>);
        // Built with `context_parameter(false)`: no `Context` argument.
        impl server_only::Mirror for Impl {
            async fn echo(&self, request: server_only::Note) -> Result<server_only::Note, Status> {
                Ok(request)
            }
            async fn drop(&self, request: server_only::Note) {
                let _ = self.0.send(note(&request.text, request.n));
            }
            async fn count(
                &self,
                _: server_only::Note,
            ) -> Result<impl Stream<Item = Result<server_only::Note, Status>> + Send + 'static, Status> {
                Ok(futures_util::stream::empty())
            }
            async fn shout(
                &self,
                _: Streaming<server_only::Note>,
            ) -> Result<impl Stream<Item = Result<server_only::Note, Status>> + Send + 'static, Status> {
                Ok(futures_util::stream::empty())
            }
            async fn sum(&self, _: Streaming<server_only::Note>) -> Result<server_only::Note, Status> {
                Err(Status::unimplemented("not here"))
            }
        }
        let (tx, mut dropped) = mpsc::unbounded_channel();
        let server = Server::builder().add_service(server_only::MirrorServer::new(Impl(tx))).build();
        let client = client_only::MirrorClient::new(server.connect_in_memory().await.unwrap());
        let reply = client.echo(client_only::Note { text: "hi".into(), n: 1 }).await.unwrap();
        assert_eq!((reply.text.as_str(), reply.n), ("hi", 1));
        client.drop(client_only::Note { text: "x".into(), n: 2 }).await.unwrap();
        assert_eq!(dropped.recv().await, Some(note("x", 2)));
        let err = client.sum(futures_util::stream::iter([client_only::Note::default()])).await.unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    })
    .await
    .expect("in time");
}

/// `acme/corners.proto`: every corner case, implemented and called.
mod corners {
    use super::WAIT;
    use super::acme::common::Id;
    use super::acme::corners::v1::{self as v1, Event, Self_};
    use futures_util::{Stream, StreamExt};
    use prost_types::Timestamp;
    use tokio::sync::mpsc;
    use weft::{Context, Server, Service, Status, Streaming};

    struct Impl(mpsc::UnboundedSender<String>);

    fn event(what: &str) -> Event {
        Event { what: what.into(), ..Event::default() }
    }

    #[allow(deprecated)]
    impl v1::Corners for Impl {
        async fn lookup(&self, _: Context, request: Id) -> Result<Timestamp, Status> {
            Ok(Timestamp { seconds: request.value.len() as i64, nanos: 0 })
        }
        async fn watch(
            &self,
            _: Context,
            request: Id,
        ) -> Result<impl Stream<Item = Result<Event, Status>> + Send + 'static, Status> {
            Ok(futures_util::stream::iter([Ok(Event { id: Some(request), ..event("watched") })]))
        }
        async fn upload(&self, _: Context, request: Streaming<Event>) -> Result<Id, Status> {
            let n = request.count().await;
            Ok(Id { value: n.to_string() })
        }
        async fn relay(
            &self,
            _: Context,
            request: Streaming<Event>,
        ) -> Result<impl Stream<Item = Result<Event, Status>> + Send + 'static, Status> {
            Ok(request)
        }
        async fn notify(&self, _: Context, request: Event) {
            let _ = self.0.send(format!("notify {}", request.what));
        }
        async fn ping(&self, _: Context, (): ()) {
            let _ = self.0.send("ping".into());
        }
        async fn nothing(&self, _: Context, (): ()) -> Result<(), Status> {
            Ok(())
        }
        async fn r#match(&self, _: Context, request: Self_) -> Result<Self_, Status> {
            Ok(Self_ { yes: !request.yes })
        }
        async fn r#type(&self, _: Context, request: Event) -> Result<Event, Status> {
            Ok(Event { r#type: "typed".into(), ..request })
        }
        async fn new_(&self, _: Context, _: Event) -> Result<Event, Status> {
            Ok(event("new"))
        }
        async fn inner_(&self, _: Context, _: Event) -> Result<Event, Status> {
            Ok(event("inner"))
        }
        async fn old(&self, _: Context, _: Event) -> Result<Event, Status> {
            Ok(event("old"))
        }
        async fn undocumented(&self, _: Context, _: Event) -> Result<Event, Status> {
            Ok(event("undocumented"))
        }
    }

    #[allow(deprecated)]
    struct LegacyImpl;

    #[allow(deprecated)]
    impl v1::Legacy for LegacyImpl {
        async fn call(&self, _: Context, request: Event) -> Result<Event, Status> {
            Ok(request)
        }
    }

    #[test]
    fn routes_use_the_names_as_written() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let routes = v1::CornersServer::new(Impl(tx)).routes();
        let names: Vec<_> = routes.iter().map(|r| r.strip_prefix("acme.corners.v1.Corners/").unwrap()).collect();
        assert_eq!(
            names,
            [
                "Lookup",
                "Watch",
                "Upload",
                "Relay",
                "Notify",
                "Ping",
                "Nothing",
                "Match",
                "type",
                "New",
                "Inner",
                "Old",
                "Undocumented"
            ]
        );
        assert_eq!(super::bare::BareServer::new(BareImpl).routes(), ["Bare/Ping"]);
    }

    struct BareImpl;

    impl super::bare::Bare for BareImpl {
        async fn ping(&self, _: Context, request: super::bare::Pong) -> Result<super::bare::Pong, Status> {
            Ok(super::bare::Pong { n: request.n + 1 })
        }
    }

    #[tokio::test]
    #[allow(deprecated)]
    async fn every_corner_is_callable() {
        tokio::time::timeout(WAIT, async {
            let (tx, mut seen) = mpsc::unbounded_channel();
            let server = Server::builder()
                .add_service(v1::CornersServer::new(Impl(tx)))
                .add_service(v1::LegacyServer::new(LegacyImpl))
                .add_service(super::bare::BareServer::new(BareImpl))
                .build();
            let conn = server.connect_in_memory().await.unwrap();
            let c = v1::CornersClient::new(conn.clone());

            assert_eq!(c.lookup(Id { value: "abc".into() }).await.unwrap().seconds, 3);
            let watched: Vec<_> = c.watch(Id { value: "w".into() }).await.unwrap().collect().await;
            assert_eq!(watched.len(), 1);
            let ups = futures_util::stream::iter([event("a"), event("b")]);
            assert_eq!(c.upload(ups).await.unwrap().value, "2");
            let relayed: Vec<_> = c.relay(futures_util::stream::iter([event("r")])).await.unwrap().collect().await;
            assert_eq!(relayed.into_iter().map(|e| e.unwrap().what).collect::<Vec<_>>(), ["r"]);

            // Fire-and-forget by option and by the builder: the client gets `()` once sent.
            c.notify(event("n")).await.unwrap();
            assert_eq!(seen.recv().await.as_deref(), Some("notify n"));
            c.ping(()).await.unwrap();
            assert_eq!(seen.recv().await.as_deref(), Some("ping"));

            c.nothing(()).await.unwrap();
            assert!(c.r#match(Self_ { yes: false }).await.unwrap().yes);
            assert_eq!(c.r#type(event("t")).await.unwrap().r#type, "typed");
            assert_eq!(c.new_(event("")).await.unwrap().what, "new");
            assert_eq!(c.inner_(event("")).await.unwrap().what, "inner");
            assert_eq!(c.old(event("")).await.unwrap().what, "old");
            assert_eq!(c.undocumented(event("")).await.unwrap().what, "undocumented");
            // The client's own methods are still there.
            let _: &weft::Client = c.inner();

            let legacy = v1::LegacyClient::new(conn.clone());
            assert_eq!(legacy.call(event("l")).await.unwrap().what, "l");
            let bare = super::bare::BareClient::new(conn);
            assert_eq!(bare.ping(super::bare::Pong { n: 1 }).await.unwrap().n, 2);
        })
        .await
        .expect("in time");
    }
}

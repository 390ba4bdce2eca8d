//! The greeter: one service with a method of each of RSocket's interaction models, served over
//! TCP on 127.0.0.1 and called through the generated client.
//!
//! Run it with `cargo run -p weft-examples --example greeter`.

mod greet_messages;

use futures_util::{Stream, StreamExt};
use greet_messages::{Chunk, Event, HelloReply, HelloRequest, Item, ListRequest, Msg, Summary};
use std::time::Duration;
use tokio::sync::mpsc;
use weft::{Client, Server, Status, Streaming};

/// Greets people, in every way RSocket can.
#[weft::service(package = "greet")]
pub trait Greeter {
    /// request/response: one request, one reply.
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status>;
    /// fire-and-forget: no return value, no reply on the wire.
    async fn record(&self, event: Event);
    /// request/stream: one request, a stream of replies.
    async fn list(&self, req: ListRequest) -> Result<impl Stream<Item = Result<Item, Status>>, Status>;
    /// channel: a stream each way.
    async fn chat(&self, msgs: Streaming<Msg>) -> Result<impl Stream<Item = Result<Msg, Status>>, Status>;
    /// client streaming: a stream in, one reply out.
    async fn upload(&self, chunks: Streaming<Chunk>) -> Result<Summary, Status>;
}

/// The server's side: an implementation of the trait.
struct MyGreeter {
    /// Where `record` puts events, so that `main` can show one arrived.
    recorded: mpsc::UnboundedSender<Event>,
}

impl Greeter for MyGreeter {
    async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status> {
        if req.name.is_empty() {
            return Err(Status::invalid_argument("a greeting needs a name"));
        }
        Ok(HelloReply { message: format!("Hello, {}!", req.name) })
    }

    async fn record(&self, event: Event) {
        let _ = self.recorded.send(event);
    }

    async fn list(
        &self,
        req: ListRequest,
    ) -> Result<impl Stream<Item = Result<Item, Status>> + Send + 'static, Status> {
        let names = ["apple", "bread", "cheese", "dates", "eggs"];
        if req.count as usize > names.len() {
            return Err(Status::out_of_range(format!("only {} items", names.len())));
        }
        let items = names.into_iter().zip(0..req.count).map(|(name, index)| Ok(Item { index, name: name.into() }));
        Ok(futures_util::stream::iter(items))
    }

    async fn chat(
        &self,
        msgs: Streaming<Msg>,
    ) -> Result<impl Stream<Item = Result<Msg, Status>> + Send + 'static, Status> {
        // Answer each message as it arrives.
        Ok(msgs.map(|msg| Ok(Msg { text: format!("you said {:?}", msg?.text) })))
    }

    async fn upload(&self, mut chunks: Streaming<Chunk>) -> Result<Summary, Status> {
        let mut summary = Summary { chunks: 0, bytes: 0 };
        while let Some(chunk) = chunks.message().await? {
            summary.chunks += 1;
            summary.bytes += chunk.data.len() as u64;
        }
        Ok(summary)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Bounded: an example that hangs is worse than one that fails.
    tokio::time::timeout(Duration::from_secs(30), run()).await??;
    Ok(())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The server: GreeterServer (generated) wraps our implementation.
    let (recorded_tx, mut recorded) = mpsc::unbounded_channel();
    let server = Server::builder().add_service(GreeterServer::new(MyGreeter { recorded: recorded_tx })).build();
    let running = server.bind("127.0.0.1:0").await?;
    let addr = running.local_addr();
    println!("Server listening on {addr} (port 0 asked the OS for any free port).");

    // The client: GreeterClient (generated) over one connection. Clones share it.
    let client = GreeterClient::new(Client::connect(addr).await?);
    println!("Client connected.\n");

    println!("1. request/response: say_hello sends one request and waits for one reply.");
    let reply = client.say_hello(HelloRequest { name: "Ada".into() }).await?;
    println!("   reply: {:?}\n", reply.message);

    println!("2. fire-and-forget: record sends an event; the server sends nothing back.");
    client.record(Event { what: "ada logged in".into() }).await?;
    let event = recorded.recv().await.ok_or("the server stopped")?;
    println!("   the server received: {:?}\n", event.what);

    println!("3. request/stream: list sends one request and gets a stream of replies.");
    let mut items = client.list(ListRequest { count: 3 }).await?;
    while let Some(item) = items.message().await? {
        println!("   item {}: {}", item.index, item.name);
    }
    println!("   (the stream ended)\n");

    println!("4. channel: chat sends a stream of messages and gets a stream of answers.");
    let said = ["hi", "how are you?", "bye"].map(|text| Msg { text: text.into() });
    let mut answers = client.chat(futures_util::stream::iter(said)).await?;
    while let Some(answer) = answers.message().await? {
        println!("   server: {}", answer.text);
    }
    println!();

    println!("5. client streaming: upload sends a stream of chunks and gets one summary.");
    let chunks = (1..=4).map(|n| Chunk { data: vec![0; n * 100] });
    let summary = client.upload(futures_util::stream::iter(chunks)).await?;
    println!("   the server got {} chunks, {} bytes\n", summary.chunks, summary.bytes);

    println!("6. errors: a handler's Err(Status) reaches the client with its code.");
    match client.say_hello(HelloRequest { name: String::new() }).await {
        Ok(reply) => println!("   unexpected reply: {:?}", reply.message),
        Err(status) => println!("   error {}: {}", status.code(), status.message()),
    }
    match client.list(ListRequest { count: 99 }).await {
        Ok(mut items) => match items.message().await {
            Err(status) => println!("   error {}: {}\n", status.code(), status.message()),
            Ok(item) => println!("   unexpected item: {item:?}\n"),
        },
        Err(status) => println!("   error {}: {}\n", status.code(), status.message()),
    }

    running.shutdown().await;
    println!("Server shut down. Bye!");
    Ok(())
}

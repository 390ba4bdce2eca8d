//! Calls both ways on one connection: the client serves a typed service too, and the server
//! calls it back while it answers the client's request.
//!
//! RSocket connections carry requests in both directions. Here the server's `Publisher`
//! publishes an article only once its author has signed it off, and asks the author (the
//! client that called) through the same connection: its handler takes the connection back to
//! the caller from its `Context` (`ctx.peer()`) and calls the `Author` service the client
//! serves, with the generated `AuthorClient`. The client adds `AuthorServer` to its
//! `ClientBuilder` as a server adds services to its `ServerBuilder`.
//!
//! Run it with `cargo run -p weft-examples --example callback`.

use std::time::Duration;
use weft::{Client, Context, Server, Status};

/// An article, and the answers about it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Article {
    /// Its title.
    #[prost(string, tag = "1")]
    pub title: String,
}

/// The author's sign-off.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignOff {
    /// Whether to publish.
    #[prost(bool, tag = "1")]
    pub approved: bool,
    /// Who signed it off.
    #[prost(string, tag = "2")]
    pub by: String,
}

/// Where and by whose leave an article was published.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Published {
    /// Where.
    #[prost(string, tag = "1")]
    pub url: String,
    /// Who signed it off.
    #[prost(string, tag = "2")]
    pub approved_by: String,
}

/// Served by the server: publishes articles.
#[weft::service(package = "news")]
pub trait Publisher {
    /// Publishes `article` once its author has signed it off.
    async fn publish(&self, ctx: Context, article: Article) -> Result<Published, Status>;
}

/// Served by the client: the author, whom the server asks before it publishes.
#[weft::service(package = "news")]
pub trait Author {
    /// Signs an article off (or not).
    async fn sign_off(&self, article: Article) -> Result<SignOff, Status>;
}

/// The server's side.
struct Press;

impl Publisher for Press {
    async fn publish(&self, ctx: Context, article: Article) -> Result<Published, Status> {
        // The connection this call came on, as a client of the services its other end serves.
        let caller = ctx.peer().ok_or_else(|| Status::internal("a served call knows its peer"))?;
        let author = AuthorClient::new(caller.clone());
        println!("   server: asking the author to sign off {:?}", article.title);
        let sign_off = author.sign_off(article.clone()).await?;
        if !sign_off.approved {
            return Err(Status::failed_precondition(format!("{} did not sign it off", sign_off.by)));
        }
        let slug = article.title.to_lowercase().replace(' ', "-");
        Ok(Published { url: format!("https://news.example/{slug}"), approved_by: sign_off.by })
    }
}

/// The client's side.
struct Ada;

impl Author for Ada {
    async fn sign_off(&self, article: Article) -> Result<SignOff, Status> {
        let approved = !article.title.contains("draft");
        println!("   client: asked to sign off {:?}: {}", article.title, if approved { "yes" } else { "no" });
        Ok(SignOff { approved, by: "Ada".into() })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Bounded: an example that hangs is worse than one that fails.
    tokio::time::timeout(Duration::from_secs(30), run()).await??;
    Ok(())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder().add_service(PublisherServer::new(Press)).build();
    let running = server.bind("127.0.0.1:0").await?;
    println!("Server listening on {}.", running.local_addr());

    // The client serves `Author` on the connection it makes.
    let client = Client::builder().add_service(AuthorServer::new(Ada)).connect(running.local_addr()).await?;
    let publisher = PublisherClient::new(client);
    println!("Client connected, serving `news.Author`.\n");

    println!("1. publish: the server calls the client back before it answers.");
    let published = publisher.publish(Article { title: "Weft 1.0".into() }).await?;
    println!("   published at {} (signed off by {})\n", published.url, published.approved_by);

    println!("2. the author declines: the server's answer says so.");
    match publisher.publish(Article { title: "A draft".into() }).await {
        Ok(published) => println!("   unexpectedly published at {}", published.url),
        Err(status) => println!("   error {}: {}", status.code(), status.message()),
    }

    running.shutdown().await;
    println!("\nServer shut down. Bye!");
    Ok(())
}

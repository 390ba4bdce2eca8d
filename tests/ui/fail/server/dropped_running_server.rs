// A server bound and its `RunningServer` dropped at once stops serving at once: a warning
// (here denied) says so, on the statement that drops it.
#![deny(unused_must_use)]

async fn start(server: weft::Server) -> Result<(), weft::Error> {
    server.bind("127.0.0.1:0").await?;
    Ok(())
}

fn main() {
    let _ = start;
}

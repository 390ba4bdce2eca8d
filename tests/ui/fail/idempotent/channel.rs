use futures_util::Stream;
use weft::{Status, Streaming};

#[weft::service]
pub trait Svc {
    #[weft(idempotent)]
    async fn chat(&self, msgs: Streaming<()>) -> Result<impl Stream<Item = Result<(), Status>>, Status>;
}

fn main() {}

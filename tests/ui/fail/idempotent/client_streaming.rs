use weft::{Status, Streaming};

#[weft::service]
pub trait Svc {
    /// Docs and other attributes around the mark change nothing.
    #[allow(unused)]
    #[weft(idempotent)]
    async fn upload(&self, chunks: Streaming<()>) -> Result<(), Status>;
}

fn main() {}

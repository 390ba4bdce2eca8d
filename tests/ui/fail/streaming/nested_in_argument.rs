use weft::Status;
use weft::Streaming;

#[weft::service]
pub trait Svc {
    async fn call(&self, req: Option<Streaming<()>>) -> Result<(), Status>;
}

fn main() {}

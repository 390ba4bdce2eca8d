use futures_util::Stream;
use weft::Status;

#[weft::service]
pub trait Svc {
    async fn call(&self, req: ()) -> Result<impl Stream<Item = ()>, Status>;
}

fn main() {}

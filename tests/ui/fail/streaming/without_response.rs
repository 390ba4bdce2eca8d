use weft::Streaming;

#[weft::service]
pub trait Svc {
    async fn call(&self, req: Streaming<()>);
}

fn main() {}

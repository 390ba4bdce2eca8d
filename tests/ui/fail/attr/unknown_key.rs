use weft::Status;
#[weft::service(package = "p", codecs = weft::BytesCodec)]
pub trait Svc {
    async fn call(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

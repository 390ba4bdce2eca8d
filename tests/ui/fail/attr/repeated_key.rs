use weft::Status;
#[weft::service(package = "a", package = "b")]
pub trait Svc {
    async fn call(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

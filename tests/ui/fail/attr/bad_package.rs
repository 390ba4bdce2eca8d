use weft::Status;
#[weft::service(package = "greet/v1")]
pub trait Svc {
    async fn call(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

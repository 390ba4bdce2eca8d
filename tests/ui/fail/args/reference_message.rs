use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(&self, req: &str) -> Result<(), Status>;
}

fn main() {}

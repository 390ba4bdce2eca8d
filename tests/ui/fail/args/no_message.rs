use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(&self) -> Result<(), Status>;
}

fn main() {}

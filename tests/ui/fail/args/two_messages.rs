use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(&self, first: (), second: ()) -> Result<(), Status>;
}

fn main() {}

use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(&mut self, req: ()) -> Result<(), Status>;
}

fn main() {}

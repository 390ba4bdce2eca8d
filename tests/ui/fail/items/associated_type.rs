use weft::Status;
#[weft::service]
pub trait Svc {
    type Reply;
    async fn call(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

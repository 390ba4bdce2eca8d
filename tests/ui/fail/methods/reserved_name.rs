use weft::Status;
#[weft::service]
pub trait Svc {
    async fn new(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

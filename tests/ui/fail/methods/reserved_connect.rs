use weft::Status;
#[weft::service]
pub trait Svc {
    async fn connect(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

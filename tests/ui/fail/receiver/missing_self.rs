use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(req: ()) -> Result<(), Status>;
}

fn main() {}

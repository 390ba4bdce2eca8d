use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(self, req: ()) -> Result<(), Status>;
}

fn main() {}

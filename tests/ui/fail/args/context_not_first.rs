use weft::Context;
use weft::Status;

#[weft::service]
pub trait Svc {
    async fn call(&self, req: (), ctx: Context) -> Result<(), Status>;
}

fn main() {}

use weft::Status;
#[weft::service(package = "p")]
pub trait Svc {
    async fn say_hello(&self, req: ()) -> Result<(), Status>;
    async fn say__hello(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

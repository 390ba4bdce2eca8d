use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call<T>(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

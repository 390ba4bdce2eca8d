use weft::Status;
#[weft::service]
pub trait Svc<T> {
    async fn call(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

use weft::Status;
#[weft::service(packages = "p")]
pub trait Svc {
    async fn one(req: ()) -> Result<(), Status>;
    async fn two<T>(&self, req: ()) -> Result<(), Status>;
    async fn three(&self, a: (), b: ()) -> Result<(), Status>;
}

fn main() {}

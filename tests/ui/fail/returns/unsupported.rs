#[weft::service]
pub trait Svc {
    async fn call(&self, req: ()) -> Option<()>;
}

fn main() {}

#[weft::service]
pub trait Svc {
    async fn call(&self, req: ()) -> Result<(), String>;
}

fn main() {}

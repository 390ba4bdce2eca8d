use weft::Status;
#[weft::service]
pub trait Svc {
    async fn call(&self, (a, b): ((), ())) -> Result<(), Status> {
        let _ = (a, b);
        Ok(())
    }
}

fn main() {}

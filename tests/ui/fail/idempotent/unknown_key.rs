use weft::Status;

#[weft::service]
pub trait Svc {
    #[weft(idempotnt)]
    async fn get(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

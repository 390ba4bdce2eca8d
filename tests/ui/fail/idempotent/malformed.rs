use weft::Status;

#[weft::service]
pub trait Svc {
    #[weft]
    async fn bare(&self, req: ()) -> Result<(), Status>;
    #[weft = "idempotent"]
    async fn name_value(&self, req: ()) -> Result<(), Status>;
    #[weft(idempotent = true)]
    async fn with_value(&self, req: ()) -> Result<(), Status>;
    #[weft(idempotent, idempotent)]
    async fn twice(&self, req: ()) -> Result<(), Status>;
    #[weft(retries = 3, idempotent)]
    async fn unknown_then_known(&self, req: ()) -> Result<(), Status>;
    #[weft(idempotent;)]
    async fn punctuation(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

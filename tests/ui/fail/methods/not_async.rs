use weft::Status;
#[weft::service]
pub trait Svc {
    fn call(&self, req: ()) -> Result<(), Status>;
}

fn main() {}

//! A `Status` of the user's own is not a service method's error type.
mod my {
    pub struct Status;
}

#[weft::service]
pub trait Svc {
    async fn call(&self, req: ()) -> Result<(), my::Status>;
}

fn main() {}

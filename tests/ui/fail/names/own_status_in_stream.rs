//! A response stream's items end with Weft's `Status` too, not a `Status` of the user's own.
use weft::Status;

mod my {
    pub struct Status;
}

#[weft::service]
pub trait Svc {
    async fn items(&self, req: ()) -> Result<impl futures_util::Stream<Item = Result<(), my::Status>>, Status>;
}

fn main() {}

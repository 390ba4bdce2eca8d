//! A `Context` of the user's own, named by a path that does not lead to Weft, is not Weft's:
//! where Weft's goes, before the request message, it is an error on that type.
use weft::Status;

pub struct Context;

#[weft::service]
pub trait Svc {
    async fn call(&self, ctx: crate::Context, req: ()) -> Result<(), Status>;
}

fn main() {}

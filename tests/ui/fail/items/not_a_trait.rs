#[weft::service]
pub struct Svc;

fn main() {}

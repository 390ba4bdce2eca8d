//! The main example (placeholder until the runtime lands).
fn main() {}

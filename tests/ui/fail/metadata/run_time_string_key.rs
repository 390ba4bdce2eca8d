//! A key made at run time is not taken as it is: it is checked first, with
//! `MimeType::try_from`, and the error says so.

fn main() {
    let key = String::from("x-user-id");
    let _ = weft::Request::new(()).with_metadata(key, "42");
}

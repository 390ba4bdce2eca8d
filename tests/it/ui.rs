//! The macro's accepted forms (`ui/pass`) and its errors (`ui/fail/<area>/<symptom>.rs`, each
//! with the expected `.stderr`; regenerate with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*/*.rs");
}

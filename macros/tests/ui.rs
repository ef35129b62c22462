//! Compile-time behaviour of the derives: `ui/pass` must compile (and run), `ui/fail` must fail
//! with exactly the checked-in `.stderr`. Regenerate with `TRYBUILD=overwrite` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

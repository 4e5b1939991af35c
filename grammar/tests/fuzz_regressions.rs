//! Inputs the fuzzer (`fuzz/`, `cargo fuzz run parse`) once found troublesome: each must
//! parse or fail promptly, and format stably when it parses.

#[test]
fn fuzz_found_inputs_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_found");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let Ok(src) = std::str::from_utf8(&bytes) else { continue };
        if let Ok(ast) = lab_grammar::parse(src, 0) {
            let once = lab_grammar::format(&ast, src);
            let again = lab_grammar::parse(&once, 0).unwrap();
            assert_eq!(again.shape(), ast.shape());
        }
        n += 1;
    }
    assert!(n >= 1);
}

//! Any bytes: the parser returns a tree or errors, never panics; and whatever parses
//! formats to text that parses to the same tree, and formats again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    if let Ok(ast) = lab_grammar::parse(src, 0) {
        let once = lab_grammar::format(&ast, src);
        let again = lab_grammar::parse(&once, 0).expect("formatted text parses");
        assert_eq!(again.shape(), ast.shape(), "formatting changed the meaning");
        assert_eq!(lab_grammar::format(&again, &once), once, "formatting is not idempotent");
    }
});

//! `labrun fmt` is idempotent and keeps meaning: on every pipeline, and on generated
//! programs with random layout and comments.

use lab_grammar::{format, parse};
use proptest::prelude::*;

fn check_fmt(src: &str) -> Result<(), String> {
    let ast = parse(src, 0).map_err(|e| format!("input does not parse: {}", e[0].message))?;
    let once = format(&ast, src);
    let again_ast = parse(&once, 0).map_err(|e| format!("formatted text does not parse: {}\n{once}", e[0].message))?;
    if again_ast.shape() != ast.shape() {
        return Err(format!("meaning changed:\n{src}\n---\n{once}"));
    }
    let twice = format(&again_ast, &once);
    if twice != once {
        return Err(format!("not idempotent:\n{once}\n---\n{twice}"));
    }
    let comments = |s: &str| s.lines().filter(|l| l.contains('#')).count();
    if comments(&once) < comments(src) {
        return Err(format!("a comment was lost:\n{src}\n---\n{once}"));
    }
    Ok(())
}

#[test]
fn every_pipeline_is_formatted_and_round_trips() {
    let mut n = 0;
    for entry in std::fs::read_dir("pipelines").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lab") {
            let src = std::fs::read_to_string(&path).unwrap();
            check_fmt(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let ast = parse(&src, 0).unwrap();
            assert_eq!(format(&ast, &src), src, "{} is not formatted; run `labrun fmt`", path.display());
            n += 1;
        }
    }
    assert!(n >= 1);
}

fn ident() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "seed", "teacher", "x_1", "width", "data", "inputs"]).prop_map(str::to_string)
}

fn ws() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", " ", "  ", "\n", " \n  ", "\t"]).prop_map(str::to_string)
}

fn comment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", " # note\n", "\n# a comment line\n", " #\n"]).prop_map(str::to_string)
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (0i64..100_000).prop_map(|i| i.to_string()),
        Just("60_000".to_string()),
        Just("1e-3".to_string()),
        Just("2.5".to_string()),
        Just("\"a \\\"q\\\" b\"".to_string()),
        Just("true".to_string()),
        ident(),
        (ident(), 0i64..4).prop_map(|(n, i)| format!("{n}[{i}]")),
        (0i64..5, 5i64..20).prop_map(|(a, b)| format!("{a}..{b}")),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((inner.clone(), ws(), comment()), 0..4).prop_map(|v| {
                let items: Vec<String> = v.into_iter().map(|(e, w, c)| format!("{w}{e},{c}")).collect();
                format!("[{}]", items.concat())
            }),
            (ident(), ident(), prop::collection::vec((prop::option::of(ident()), inner.clone(), comment()), 0..4))
                .prop_map(|(k, m, args)| {
                    let a: Vec<String> = args
                        .into_iter()
                        .enumerate()
                        .map(|(i, (n, e, c))| match n {
                            Some(n) => format!("{n}{i}: {e},{c}"),
                            None => format!("{e},{c}"),
                        })
                        .collect();
                    format!("{k}.{m}({})", a.concat())
                }),
            (inner.clone(), prop::sample::select(vec!["+", "-", "*", "/", "%", ".."]), inner.clone())
                .prop_map(|(a, op, b)| format!("({a}) {op} ({b})")),
            inner.clone().prop_map(|e| format!("-({e})")),
            (inner.clone(), ident(), inner.clone()).prop_map(|(b, v, xs)| format!("[{b} for {v}_ in {xs}]")),
            (ident(), inner.clone()).prop_map(|(k, v)| format!("{{{k}: {v},}}")),
        ]
    })
}

fn item() -> impl Strategy<Value = String> {
    prop_oneof![
        (ident(), ws(), expr(), comment()).prop_map(|(n, w, e, c)| format!("{n}_s ={w}{e}{c}\n")),
        (ident(), expr(), comment()).prop_map(|(n, e, c)| format!("param {n}_p = {e}{c}\n")),
        (ident(), expr(), ident(), expr(), comment())
            .prop_map(|(v, xs, n, e, c)| format!("for {v}_l in {xs} {{{c}\n  {n}_f[{v}_l] = {e}\n}}\n")),
        (expr(), comment())
            .prop_map(|(e, c)| format!("report \"R\" {{\n table \"T\" {{ \"row\" = {e}{c}\n}} fig = {e} }}\n")),
        Just("import \"common.lab\"\n".to_string()),
        Just("\n\n".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_round_trip(items in prop::collection::vec(item(), 1..8)) {
        let src = items.concat();
        // The generator makes valid programs; proptest fails if too many are rejected.
        prop_assume!(parse(&src, 0).is_ok());
        check_fmt(&src).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = parse(&s, 0);
    }

    #[test]
    fn parser_never_panics_on_lab_like_soup(parts in prop::collection::vec(prop::sample::select(vec![
        "a", "=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "..", "\"", "#", "\n", "for", "in", "param",
        "report", "table", "1", "2.5e", "-", "+", "*", "/", "%", "import", "\\", " ", "x.y(",
    ]), 0..60)) {
        let s = parts.concat();
        if let Ok(ast) = parse(&s, 0) {
            let _ = format(&ast, &s);
        }
    }
}

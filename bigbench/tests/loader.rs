//! The loader on the shared tasks and on broken ones: every mistake names the file and
//! the field.

use lab_bigbench::task::{Body, Task};
use std::path::{Path, PathBuf};

fn shared(t: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/bigbench").join(t)
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

const HEAD: &str = r#""canary": "c", "name": "t", "description": "d", "keywords": ["k"]"#;

fn task(body: &str) -> String {
    format!("{{{HEAD}, {body}}}")
}

fn err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "task.json", text);
    let e = Task::load(&p, 2, 42).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(&p.display().to_string()), "the error does not name the file: {s}");
    s
}

const OK_EX: &str = r#""examples": [{"input": "1+1", "target": "2"}, {"input": "1+2", "target": "3"}, {"input": "2+2", "target": "4"}]"#;

#[test]
fn shared_tasks_load_with_the_official_defaults() {
    let t = Task::load(&shared("arithmetic/2_digit_subtraction"), 2, 42).unwrap();
    let (name, leaf) = t.leaves()[0];
    assert_eq!(name, "2_digit_subtraction");
    assert_eq!(leaf.examples.len(), 1000);
    assert_eq!(leaf.preferred, "exact_str_match");
    assert_eq!(
        leaf.multiple_choice,
        ["multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error"]
    );
    assert_eq!((leaf.low, leaf.high), (0.0, 1.0));
    assert_eq!(leaf.separator, "\n");
    assert!(
        leaf.examples[0].input.starts_with("\nQ: What is 61 minus 49?\n  choice: "),
        "{:?}",
        leaf.examples[0].input
    );
    assert!(leaf.examples[0].input.ends_with("\nA: "));

    // The multiple-choice task's low end is the random-guess score.
    let t = Task::load(&shared("simple_arithmetic_json_multiple_choice"), 2, 42).unwrap();
    let leaf = t.leaves()[0].1;
    assert_eq!(leaf.low, 0.25);
    assert!(leaf.examples[0].input.contains(" option: "));

    // A composite task: subtasks sorted by folder, named parent:child.
    let t = Task::load(&shared("simple_arithmetic_json_subtasks"), 2, 42).unwrap();
    assert!(matches!(t.body, Body::Composite(_)));
    let names: Vec<&str> = t.leaves().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "simple_arithmetic_json_subtasks:one_digit",
            "simple_arithmetic_json_subtasks:three_digit",
            "simple_arithmetic_json_subtasks:two_digit"
        ]
    );
    assert_eq!(t.per_leaf_max(Some(7)).unwrap(), Some(2));
    assert!(t.per_leaf_max(Some(2)).unwrap_err().contains("at least the number of subtasks"));

    let t = Task::load(&shared("repeat_copy_logic"), 2, 42).unwrap();
    let leaf = t.leaves()[0].1;
    assert_eq!(leaf.task_prefix, "repeat with logic:\n");
    assert_eq!(leaf.output_regex.as_deref(), Some(lab_bigbench::task::DEFAULT_REGEX));
}

#[test]
fn duplicates_are_dropped_and_python_truthiness_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "task.json",
        &task(
            r#""metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade", "append_choices_to_input": "false",
            "examples": [{"input": "a", "target_scores": {"x": 1, "y": 0}}, {"input": "a", "target_scores": {"x": 1, "y": 0}},
                         {"input": "b", "target_scores": {"x": 0, "y": 1}}, {"input": "c", "target_scores": {"x": 1, "y": 0}}]"#,
        ),
    );
    let t = Task::load(&p, 2, 42).unwrap();
    let leaf = t.leaves()[0].1;
    assert_eq!((leaf.examples.len(), leaf.duplicates), (3, 1));
    // The string "false" is true in Python, so the choices are appended.
    assert!(leaf.examples[0].input.contains("\n  choice: "), "{:?}", leaf.examples[0].input);
    assert_eq!(leaf.examples[1].target, ["y"], "the target is the best-scored choice");
}

#[test]
fn mistakes_name_the_file_and_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"name": "t"}"#, "field `canary`"),
        (
            &task(r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": []"#),
            "field `examples`: is empty",
        ),
        (
            &task(r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": "x""#),
            "field `examples`",
        ),
        (
            &task(&format!(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "colour": 1, {OK_EX}"#
            )),
            "field `colour`: is not a field",
        ),
        (
            &task(&format!(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "task_prefix": 3, {OK_EX}"#
            )),
            "field `task_prefix`: must be a string",
        ),
        (
            &task(&format!(r#""metrics": ["exact_match"], "preferred_score": "exact_str_match", {OK_EX}"#)),
            "field `metrics`: lists `exact_match`",
        ),
        (&task(&format!(r#""metrics": ["bleurt"], "preferred_score": "bleurt", {OK_EX}"#)), "BLEURT-20"),
        (
            &task(&format!(r#""metrics": ["rouge"], "preferred_score": "rouge", {OK_EX}"#)),
            "`rouge1`, `rouge2` or `rougeLsum`",
        ),
        (&task(&format!(r#""metrics": ["bleu"], "preferred_score": "exact_str_match", {OK_EX}"#)), "do not produce it"),
        (
            &task(&format!(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "output_regex": "(a)(b)", {OK_EX}"#
            )),
            "field `output_regex`",
        ),
        (
            &task(&format!(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "append_choices_to_input": 1, {OK_EX}"#
            )),
            "field `append_choices_to_input`",
        ),
        (
            &task(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": [{"input": "a", "target": "b"}, {"input": "a", "target": "b"}]"#,
            ),
            "too few for 2-shot",
        ),
        (
            &task(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": [{"input": 1, "target": "b"}, {"input": "x", "target": "b"}, {"input": "y", "target": "b"}]"#,
            ),
            "field `examples[0].input`: must be a string",
        ),
        (
            &task(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": [{"input": "a", "target": [1]}, {"input": "x", "target": "b"}, {"input": "y", "target": "b"}]"#,
            ),
            "field `examples[0].target`",
        ),
        (
            &task(
                r#""metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": [{"input": "a", "target": "b"}, {"input": "x", "target": "b", "hint": "h"}, {"input": "y", "target": "b"}]"#,
            ),
            "`hint`",
        ),
        (
            &task(
                r#""metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade", "examples": [{"input": "a", "target": "b"}, {"input": "x", "target": "b"}, {"input": "y", "target": "b"}]"#,
            ),
            "field `examples[0].target_scores`: is missing",
        ),
        (
            &task(
                r#""metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade", "examples": [{"input": "a", "target_scores": {"p": 0, "q": 0}}, {"input": "x", "target_scores": {"p": 1, "q": 0}}, {"input": "y", "target_scores": {"p": 1, "q": 0}}]"#,
            ),
            "no choice is correct",
        ),
        (
            &task(
                r#""metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade", "examples": [{"input": "a", "target_scores": {"p": "1"}}, {"input": "x", "target_scores": {"p": 1}}, {"input": "y", "target_scores": {"p": 1}}]"#,
            ),
            "must be a number",
        ),
        ("{not json", "not valid JSON"),
    ];
    for (text, want) in cases {
        let e = err(text);
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
}

#[test]
fn a_folder_without_examples_or_subtasks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "task.json", &format!("{{{HEAD}}}"));
    let e = Task::load(&p, 0, 42).unwrap_err().to_string();
    assert!(e.contains("must have examples or subtasks"), "{e}");
    // A subtask's own mistakes name the subtask's file.
    write(
        dir.path(),
        "sub/task.json",
        &format!(
            "{{{HEAD}, \"metrics\": [\"exact_str_match\"], \"preferred_score\": \"exact_str_match\", \"examples\": [{{\"input\": \"a\"}}]}}"
        ),
    );
    let e = Task::load(dir.path(), 0, 42).unwrap_err().to_string();
    assert!(e.contains("sub/task.json") && e.contains("examples[0].target"), "{e}");
}

//! Reading a program: the root file and, transitively, its imports. Each file is read
//! once (by canonical path), so import cycles are harmless.

use crate::{Diag, Sources};
use lab_grammar::{File, Item};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The parsed files of one program; `files[0]` is the root.
pub struct Loaded {
    pub sources: Sources,
    pub files: Vec<(u32, File)>,
    /// The project folder every file the program names must lie in: as shown in messages,
    /// and canonical (for comparisons).
    pub project: Option<(PathBuf, PathBuf)>,
}

/// The file that marks a project's folder (it also holds the project's settings).
pub const PROJECT_FILE: &str = "labrun.toml";

/// The project folder of a program whose root file is `root`: `given` (`--import-root`),
/// else the nearest folder at or above the root file's that holds a `labrun.toml`, else
/// the root file's folder.
pub fn project_root(root: &Path, given: Option<&Path>) -> Option<PathBuf> {
    if let Some(g) = given {
        return Some(g.to_path_buf());
    }
    let dot = |p: &Path| if p.as_os_str().is_empty() { Path::new(".").to_path_buf() } else { p.to_path_buf() };
    let dir = dot(root.parent()?);
    // As written first (so messages show the path the user gave), then above it.
    let written = dir.ancestors().map(dot).find(|a| a.join(PROJECT_FILE).is_file());
    let above =
        || std::path::absolute(&dir).ok()?.ancestors().map(Path::to_path_buf).find(|a| a.join(PROJECT_FILE).is_file());
    Some(written.or_else(above).unwrap_or(dir))
}

/// Reads and parses `root` and everything it imports. Syntax errors of every file are
/// collected; a file that cannot be read is reported at the `import` that named it.
/// Imports must be `.lab` files inside the project folder ([`project_root`]).
/// With `parsed`, a folder, large files' syntax trees are kept there and reused while the
/// text is unchanged ([`parse_kept`]).
pub fn load(root: &Path, project: Option<&Path>, parsed: Option<&Path>) -> (Loaded, Vec<Diag>) {
    let mut diags = Vec::new();
    // A project folder named with `--import-root` must exist: confinement is never off.
    if let Some(given) = project
        && !given.is_dir()
    {
        diags.push(
            Diag::new("lab::io", format!("`--import-root {}` is not a folder", display_path(given)))
                .help("name the project folder that holds the `.lab` files and the data they read"),
        );
    }
    let project = project_root(root, project)
        // As the user wrote it (for messages) and as it is (for comparisons).
        .and_then(|p| p.canonicalize().ok().map(|c| (p, c)));
    let mut sources = Sources::default();
    let mut files = Vec::new();
    let mut seen: BTreeMap<PathBuf, ()> = BTreeMap::new();
    let mut queue: Vec<(PathBuf, String, Option<lab_grammar::Span>)> =
        vec![(root.to_path_buf(), root.display().to_string(), None)];
    while let Some((path, name, from)) = queue.pop() {
        let canon = path.canonicalize().unwrap_or_else(|_| path.clone());
        if seen.insert(canon, ()).is_some() {
            continue;
        }
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(msg) => {
                let mut d = Diag::new("lab::io", format!("cannot read `{name}`: {msg}"));
                let encoding = msg.contains("UTF-8");
                if let Some(span) = from {
                    d = d.at(span, "imported here");
                }
                let with_lab = path.with_extension("lab");
                let missing_extension = path.extension().is_none() && with_lab.is_file();
                d = d.help(match (encoding, from.is_some()) {
                    (true, _) => "`.lab` files are UTF-8 text; save it as UTF-8".to_string(),
                    (false, _) if missing_extension => format!("did you mean `{}`?", display_path(&with_lab)),
                    (false, true) => "import paths are relative to the importing file".into(),
                    (false, false) => "check the path; labrun takes a `.lab` file".into(),
                });
                diags.push(d);
                continue;
            }
        };
        let id = sources.add(path.clone(), name, text);
        let text = &sources.get(id).text;
        match parse_kept(text, id, parsed) {
            Ok(file) => {
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                for item in &file.items {
                    if let Item::Import(i) = item {
                        let target = dir.join(&i.path.value);
                        match confined(&target, &i.path.value, project.as_ref()) {
                            Ok(()) => {
                                let shown = display_path(&target);
                                queue.push((target, shown, Some(i.path.span)));
                            }
                            Err((msg, help)) => diags
                                .push(Diag::new("lab::bad_import", msg).at(i.path.span, "imported here").help(help)),
                        }
                    }
                }
                files.push((id, file));
            }
            Err(errs) => diags.extend(
                errs.into_iter().map(|e| Diag::new("lab::syntax", e.message).at(e.span, e.label).maybe_help(e.help)),
            ),
        }
    }
    files.sort_by_key(|(id, _)| *id);
    if diags.is_empty()
        && let Some((id, f)) = files.first()
    {
        let has_step = f.items.iter().any(|i| matches!(i, Item::Step(_) | Item::For(_) | Item::Report(_)));
        if !has_step {
            let end = sources.get(*id).text.len();
            diags.push(
                Diag::new("lab::empty", format!("`{}` defines no steps", sources.get(*id).name))
                    .at(lab_grammar::Span::new(*id, end, end), "nothing to run")
                    .help("a step is written `name = kind.method(args…)`; `labrun ops` lists the ops"),
            );
        }
    }
    (Loaded { sources, files, project }, diags)
}

/// Files smaller than this parse about as fast as a kept tree is read.
const KEEP_BYTES: usize = 4 << 10;

/// Parses `text`, or reads the syntax tree kept from an earlier parse of the very same
/// text (same file position in the program, same parser: [`lab_grammar::FINGERPRINT`]). A
/// kept tree is checksummed; one that is damaged or unreadable is parsed again. Only
/// successful parses are kept, and keeping is best effort: a read-only folder costs nothing
/// but the time saved.
pub fn parse_kept(text: &str, id: u32, dir: Option<&Path>) -> Result<File, Vec<lab_grammar::ParseError>> {
    let Some(dir) = dir.filter(|_| text.len() >= KEEP_BYTES) else { return lab_grammar::parse(text, id) };
    let mut h = blake3::Hasher::new();
    h.update(lab_grammar::FINGERPRINT.as_bytes());
    h.update(&id.to_le_bytes());
    h.update(text.as_bytes());
    let path = dir.join(format!("{}.ast", h.finalize().to_hex()));
    if let Ok(bytes) = std::fs::read(&path)
        && let Some((sum, body)) = bytes.split_at_checked(32)
        && blake3::hash(body).as_bytes() == sum
        && let Some(file) = decode_kept(body)
    {
        return Ok(file);
    }
    let file = lab_grammar::parse(text, id)?;
    if let Some(body) = encode_kept(&file) {
        let mut bytes = blake3::hash(&body).as_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let tmp =
            dir.join(format!(".{}.{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("ast"), std::process::id()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            });
    }
    Ok(file)
}

/// Kept trees are stored in parts (the items split evenly), decoded in parallel: the
/// part count (`u32`), each part's length (`u64`), then the parts.
const KEPT_PARTS: usize = 2;

fn encode_kept(file: &File) -> Option<Vec<u8>> {
    let per = file.items.len().div_ceil(KEPT_PARTS).max(1);
    let parts: Vec<Vec<u8>> = file.items.chunks(per).map(postcard::to_stdvec).collect::<Result<_, _>>().ok()?;
    let mut out = (parts.len() as u32).to_le_bytes().to_vec();
    for p in &parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
    }
    for p in &parts {
        out.extend_from_slice(p);
    }
    Some(out)
}

fn decode_kept(body: &[u8]) -> Option<File> {
    let n = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let mut at = 4 + 8 * n;
    let mut parts = Vec::with_capacity(n);
    for k in 0..n {
        let len = u64::from_le_bytes(body.get(4 + 8 * k..12 + 8 * k)?.try_into().ok()?) as usize;
        parts.push(body.get(at..at.checked_add(len)?)?);
        at += len;
    }
    if at != body.len() {
        return None;
    }
    let decoded: Vec<Option<Vec<lab_grammar::Item>>> = std::thread::scope(|sc| {
        let handles: Vec<_> =
            parts.iter().map(|p| sc.spawn(move || postcard::from_bytes::<Vec<lab_grammar::Item>>(p).ok())).collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    let mut items = Vec::new();
    for d in decoded {
        items.extend(d?);
    }
    Some(File { items })
}

/// Whether an import may be read: a `.lab` file, inside the project. Nothing of a refused
/// file is read, so its content never appears in a message.
fn confined(target: &Path, written: &str, project: Option<&(PathBuf, PathBuf)>) -> Result<(), (String, String)> {
    if target.extension().is_none_or(|e| e != "lab") {
        return Err((
            format!("`{written}` is not a `.lab` file"),
            "`import` brings in the steps and params of another `.lab` file; data files go to ops such as `data.jsonl`"
                .into(),
        ));
    }
    let (Some((shown, project)), Ok(canon)) = (project, target.canonicalize()) else {
        // A missing file is reported when it is read.
        return Ok(());
    };
    if !canon.starts_with(project) {
        return Err((
            format!("`{written}` is outside the project folder `{}`", display_path(shown)),
            PROJECT_HELP.into(),
        ));
    }
    Ok(())
}

/// What the project folder is, and how to widen it.
pub const PROJECT_HELP: &str = "labrun reads files inside the project folder: the nearest folder with a `labrun.toml` at or above the file it runs, else that file's folder; name a wider one with `--import-root DIR`";

/// A file system error in the words a user expects ("no such file", not "entity not found").
pub fn io_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a folder".into(),
        k => k.to_string(),
    }
}

pub(crate) fn display_path(p: &Path) -> String {
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| io_words(&e))?;
    if meta.is_dir() {
        return Err("it is a directory".into());
    }
    if !meta.is_file() {
        return Err("it is not a regular file (a device, a pipe or a socket)".into());
    }
    let too_big =
        |n: u64| format!("it is {} MiB; labrun reads `.lab` files up to {} MiB", n >> 20, MAX_FILE_BYTES >> 20);
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    // Read with a bound: the file may grow while it is read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| e.kind().to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..at]);
        let line = text.matches('\n').count() + 1;
        format!("it is not UTF-8 text (invalid byte at line {line}, byte offset {at})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(seed: u32) -> String {
        (0..3000).map(|i| format!("s{i} = generate.noise(shape: [1], count: 2, seed: {})\n", i + seed)).collect()
    }

    fn kept(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_kept_parse_serves_the_same_text_only_and_a_damaged_one_is_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (big(0), big(1));
        assert!(a.len() >= KEEP_BYTES);
        let first = parse_kept(&a, 0, Some(dir.path())).unwrap();
        assert_eq!(first, lab_grammar::parse(&a, 0).unwrap());
        let files = kept(dir.path());
        assert_eq!(files.len(), 1);
        // What is kept is what is served: plant the tree of `b` under `a`'s name.
        let body = encode_kept(&lab_grammar::parse(&b, 0).unwrap()).unwrap();
        let mut planted = blake3::hash(&body).as_bytes().to_vec();
        planted.extend_from_slice(&body);
        std::fs::write(&files[0], &planted).unwrap();
        assert_eq!(parse_kept(&a, 0, Some(dir.path())).unwrap(), lab_grammar::parse(&b, 0).unwrap());
        // A damaged tree fails its checksum: the text is parsed again, and kept afresh.
        let mut damaged = planted.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        std::fs::write(&files[0], &damaged).unwrap();
        assert_eq!(parse_kept(&a, 0, Some(dir.path())).unwrap(), first);
        assert_eq!(parse_kept(&a, 0, Some(dir.path())).unwrap(), first);
        // Another text, or the same text at another position of a program, is another entry.
        parse_kept(&b, 0, Some(dir.path())).unwrap();
        parse_kept(&a, 1, Some(dir.path())).unwrap();
        assert_eq!(kept(dir.path()).len(), 3);
        // A file with a syntax error is never kept.
        let broken = format!("{a}oops = (\n");
        assert!(parse_kept(&broken, 0, Some(dir.path())).is_err());
        assert_eq!(kept(dir.path()).len(), 3);
    }
}

//! Files and folders named in `.lab` files: resolved against the naming file's folder and
//! hashed into the step's key, so an edited file is never served from the cache.

use super::Lowerer;
use crate::Diag;
use lab_grammar::Span;
use std::path::Path;

impl Lowerer<'_> {
    /// A `Path` (or `Dir`) argument: resolved against its file's directory and hashed, so
    /// the cache key changes when the file's content does (for a folder, when any file in
    /// it, or its name, does).
    pub(super) fn resolve_path(
        &mut self,
        p: &str,
        span: Span,
        folder_ok: bool,
        max_bytes: Option<u64>,
    ) -> Option<(String, String)> {
        let base = self.dirs.get(span.file as usize).cloned().unwrap_or_default();
        let path = base.join(p);
        // Nothing outside the project is read, not even to hash it. A path that does not
        // exist is reported below, when it is read.
        if let (Some((shown, project)), Ok(canon)) = (&self.project, path.canonicalize())
            && !canon.starts_with(project)
        {
            self.diags.push(
                Diag::new(
                    "lab::outside_project",
                    format!("`{p}` is outside the project folder `{}`", crate::load::display_path(shown)),
                )
                .at(span, "outside the project")
                .help(crate::load::PROJECT_HELP),
            );
            return None;
        }
        // A file (or a folder's files together) larger than its op reads is refused by its
        // size, before it is hashed.
        let size = std::fs::metadata(&path).ok().map(|m| if m.is_dir() { tree_size(&path, 0) } else { m.len() });
        if let (Some(max), Some(size)) = (max_bytes, size)
            && size > max
        {
            self.diags.push(
                Diag::new(
                    "lab::too_large",
                    format!(
                        "`{p}` is {}; this argument takes files of up to {}",
                        lab_ops::fmt_bytes(size),
                        lab_ops::fmt_bytes(max)
                    ),
                )
                .at(span, "too large")
                .help("split the file, or keep only the records you need"),
            );
            return None;
        }
        let hashed = std::fs::metadata(&path).and_then(|m| {
            let mut h = blake3::Hasher::new();
            if m.is_dir() && folder_ok {
                hash_tree(&path, Path::new(""), &mut h, self.project.as_ref().map(|(_, c)| c.as_path()))?;
                return Ok(h.finalize().to_hex().to_string());
            }
            if m.is_dir() {
                return Err(std::io::Error::other("it is a directory"));
            }
            hash_file(&path, &mut h)?;
            Ok(h.finalize().to_hex().to_string())
        });
        match hashed {
            Ok(hash) => Some((path.display().to_string(), hash)),
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::Other { e.to_string() } else { e.kind().to_string() };
                self.diags.push(
                    Diag::new("lab::io", format!("cannot read `{p}`: {why}"))
                        .at(span, format!("looked for {}", path.display()))
                        .help("paths are relative to the `.lab` file that names them"),
                );
                None
            }
        }
    }
}

/// A regular file into the hash, streamed: a device or a pipe is refused, and a large data
/// file is never held in memory.
fn hash_file(path: &Path, h: &mut blake3::Hasher) -> std::io::Result<()> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("it is not a regular file (a device, a pipe or a socket)"));
    }
    lab_cache::hash_file(h, path)
}

/// Every file under `dir` into the hash, in name order, each with its relative path and
/// length (so moving bytes between files changes the key). A link inside that leads out of
/// `project` is refused: nothing outside the project is read.
fn hash_tree(dir: &Path, rel: &Path, h: &mut blake3::Hasher, project: Option<&Path>) -> std::io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        if let Some(project) = project
            && e.file_type()?.is_symlink()
            && !e.path().canonicalize().is_ok_and(|c| c.starts_with(project))
        {
            return Err(std::io::Error::other(format!(
                "{}: a link that leads outside the project folder",
                r.display()
            )));
        }
        let t = std::fs::metadata(e.path())?;
        if t.is_dir() {
            hash_tree(dir, &r, h, project)?;
        } else {
            h.update(r.to_string_lossy().as_bytes());
            h.update(&[0]);
            h.update(&t.len().to_le_bytes());
            hash_file(&e.path(), h).map_err(|err| std::io::Error::other(format!("{}: {err}", r.display())))?;
        }
    }
    Ok(())
}

/// The bytes of the regular files under `dir` (links not followed; 32 levels deep at most).
fn tree_size(dir: &Path, depth: usize) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            Ok(t) if t.is_dir() && depth < 32 => tree_size(&e.path(), depth + 1),
            _ => 0,
        })
        .fold(0, u64::saturating_add)
}

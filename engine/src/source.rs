use std::path::PathBuf;

/// One loaded `.lab` file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The name shown in diagnostics (the path as the user gave it, or as an import
    /// resolved it).
    pub name: String,
    pub text: String,
    /// Byte offsets where lines start, computed on first use.
    lines: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    /// Line starts, computed once per file so that locating many diagnostics stays linear.
    pub fn line_starts(&self) -> &[usize] {
        self.lines.get_or_init(|| std::iter::once(0).chain(self.text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    /// The 0-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts().partition_point(|&s| s <= offset).saturating_sub(1)
    }

    /// The text of a 0-based line, without its line break.
    pub fn line_text(&self, line: usize) -> (usize, &str) {
        let starts = self.line_starts();
        let start = starts[line];
        let end = starts.get(line + 1).map_or(self.text.len(), |&e| e - 1);
        (start, &self.text[start..end.max(start)])
    }
}

/// Every file of a program; `Span::file` indexes into it.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, path: PathBuf, name: String, text: String) -> u32 {
        self.files.push(SourceFile { path, name, text, lines: Default::default() });
        (self.files.len() - 1) as u32
    }

    pub fn get(&self, file: u32) -> &SourceFile {
        &self.files[file as usize]
    }

    /// `name:line:col` of a byte offset, 1-based.
    pub fn location(&self, file: u32, offset: u32) -> String {
        let f = self.get(file);
        let offset = (offset as usize).min(f.text.len());
        let line = f.line_of(offset);
        let (start, _) = f.line_text(line);
        let col = f.text.get(start..offset).map_or(0, |t| t.chars().count()) + 1;
        format!("{}:{}:{col}", f.name, line + 1)
    }
}

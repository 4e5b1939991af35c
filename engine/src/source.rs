use std::path::PathBuf;

/// One loaded `.lab` file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The name shown in diagnostics (the path as the user gave it, or as an import
    /// resolved it).
    pub name: String,
    pub text: String,
}

/// Every file of a program; `Span::file` indexes into it.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, path: PathBuf, name: String, text: String) -> u32 {
        self.files.push(SourceFile { path, name, text });
        (self.files.len() - 1) as u32
    }

    pub fn get(&self, file: u32) -> &SourceFile {
        &self.files[file as usize]
    }

    /// `name:line:col` of a byte offset, 1-based.
    pub fn location(&self, file: u32, offset: u32) -> String {
        let f = self.get(file);
        let before = &f.text[..(offset as usize).min(f.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{col}", f.name)
    }
}

//! The build context: a directory (or a tar unpacked into a temporary one) and its
//! `.dockerignore` (docker's rules: patterns cleaned, leading `/` and `./` dropped, `*` not
//! crossing `/`, `**` any number of directories, `!` re-includes, the last match wins, a
//! pattern matching a directory excludes what is below it).

use std::io::Read;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::{Error, Result};

/// One `.dockerignore` line.
#[derive(Debug, Clone)]
struct Pattern {
    glob: GlobMatcher,
    exception: bool,
}

/// The `.dockerignore` rules.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// docker's filepath.Clean of a pattern, relative to the context root.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

impl Ignore {
    /// Parses `.dockerignore` text.
    pub fn parse(text: &str) -> Result<Ignore> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exception, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let p = clean(p);
            if p.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| Error::Ignore {
                    pattern: l.to_string(),
                    source,
                })?
                .compile_matcher();
            patterns.push(Pattern { glob, exception });
        }
        Ok(Ignore { patterns })
    }

    /// Whether the context path `rel` (relative, `/`-separated) is excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let rel = clean(rel);
        if rel.is_empty() {
            return false;
        }
        let mut out = false;
        for p in &self.patterns {
            // The path or one of its parents matches.
            let mut hit = p.glob.is_match(&rel);
            let mut cur = rel.as_str();
            while !hit {
                match cur.rfind('/') {
                    Some(i) => {
                        cur = &cur[..i];
                        hit = p.glob.is_match(cur);
                    }
                    None => break,
                }
            }
            if hit {
                out = !p.exception;
            }
        }
        out
    }
}

/// A build context on disk.
#[derive(Debug)]
pub struct Context {
    pub dir: PathBuf,
    pub ignore: Ignore,
    /// The unpacked tar, removed on drop.
    _tmp: Option<tempfile::TempDir>,
}

impl Context {
    /// A context directory; `dockerfile` (a path inside or outside it) selects which
    /// `<name>.dockerignore` may replace `.dockerignore`.
    pub fn dir(dir: &Path, dockerfile: Option<&Path>) -> Result<Context> {
        let dir = dir
            .canonicalize()
            .map_err(Error::io("open build context", dir))?;
        let mut ignore_file = dir.join(".dockerignore");
        if let Some(df) = dockerfile {
            let specific = PathBuf::from(format!("{}.dockerignore", df.display()));
            if specific.exists() {
                ignore_file = specific;
            }
        }
        let ignore = match std::fs::read_to_string(&ignore_file) {
            Ok(t) => Ignore::parse(&t)?,
            Err(_) => Ignore::default(),
        };
        Ok(Context {
            dir,
            ignore,
            _tmp: None,
        })
    }

    /// A context given as a tar stream (stdin or a file), unpacked into a temporary dir.
    pub fn tar(reader: impl Read, tmp_parent: &Path) -> Result<Context> {
        let tmp = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(tmp_parent)
            .map_err(Error::io("create context dir", tmp_parent))?;
        let mut a = tar::Archive::new(reader);
        a.set_preserve_permissions(true);
        a.unpack(tmp.path())
            .map_err(Error::io("unpack build context", tmp.path()))?;
        let mut c = Context::dir(tmp.path(), None)?;
        c._tmp = Some(tmp);
        Ok(c)
    }

    /// The context path of a source as written in COPY (relative to the context root,
    /// never leaving it).
    pub fn rel(src: &str) -> String {
        clean(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse(
            "# comment\n/secret\n*.log\n!keep.log\n**/tmp\ndocs/*.md\n!docs/README.md\n./build\n",
        )
        .unwrap();
        let cases = [
            ("secret", true),
            ("secret/a/b", true),
            ("a/secret", false),
            ("x.log", true),
            ("keep.log", false),
            ("sub/x.log", false),
            ("tmp", true),
            ("a/b/tmp/f", true),
            ("docs/a.md", true),
            ("docs/README.md", false),
            ("docs/sub/a.md", false),
            ("build/out", true),
            ("src/main.rs", false),
        ];
        for (p, want) in cases {
            assert_eq!(ig.excluded(p), want, "{p}");
        }
    }
}

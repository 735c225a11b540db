//! The Dockerfile parser: parser directives (`# escape=`, `# syntax=`), comments, line
//! continuations, heredocs (`<<EOF`, `<<-EOF`, quoted delimiters), instruction flags
//! (`--name=value`) and the JSON (exec) form. Errors name the line and column.

use crate::{Error, Result};

/// Instructions docker knows.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The flags each instruction accepts.
fn flags_of(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "FROM" => &["platform"],
        "RUN" => &["mount", "network", "security"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &[
            "chown",
            "chmod",
            "checksum",
            "link",
            "keep-git-dir",
            "exclude",
        ],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    }
}

/// An instruction's arguments after the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The exec (JSON array) form.
    Json(Vec<String>),
    /// The shell form: the rest of the line (continuations joined, comments removed).
    Text(String),
}

/// A here-document attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// The delimiter was quoted: no variable expansion in the content.
    pub quoted: bool,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// Upper case.
    pub keyword: String,
    /// `--name=value` flags in order (a flag without `=` has the value "true").
    pub flags: Vec<(String, String)>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
    /// The instruction as written after the keyword (continuations joined), for history.
    pub text: String,
}

impl Instruction {
    /// The value of flag `name`, if given (the last one wins).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of flag `name`.
    pub fn flag_all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

fn syntax(line: usize, column: usize, message: impl Into<String>) -> Error {
    Error::Syntax {
        line,
        column,
        message: message.into(),
    }
}

/// Parses the parser directives at the top; returns the escape character and the number of
/// lines they took.
fn directives(lines: &[&str]) -> Result<(char, usize)> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim_start().strip_prefix('#') else {
            return Ok((escape, n));
        };
        let Some((k, v)) = rest.split_once('=') else {
            return Ok((escape, n));
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Ok((escape, n));
        }
        if seen.contains(&k) {
            return Err(syntax(
                n + 1,
                1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        let v = v.trim();
        if k == "escape" {
            escape = match v {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(syntax(
                        n + 1,
                        1,
                        format!("invalid escape token '{v}' does not match ` or \\"),
                    ));
                }
            };
        }
        seen.push(k);
    }
    Ok((escape, lines.len()))
}

/// Whether a physical line ends with the escape character (a continuation); returns it
/// without that character.
fn continued(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end();
    t.strip_suffix(escape)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The heredoc delimiters `<<[-]WORD` in a logical line (names, quoted, strip tabs).
fn heredoc_markers(text: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("<<") {
        let mut s = &rest[i + 2..];
        let strip = s.starts_with('-');
        if strip {
            s = &s[1..];
        }
        let (quoted, s) = match s.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &s[1..]),
            _ => (None, s),
        };
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let name = &s[..end];
        let ok_quote = match quoted {
            Some(q) => s[end..].starts_with(q),
            None => true,
        };
        if !name.is_empty() && ok_quote && !name.chars().next().unwrap().is_ascii_digit() {
            out.push((name.to_string(), quoted.is_some(), strip));
        }
        rest = &s[end..];
    }
    out
}

/// Parses a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile> {
    let lines: Vec<&str> = src.lines().collect();
    let (escape, first) = directives(&lines)?;
    let mut instructions = Vec::new();
    let mut n = first;
    while n < lines.len() {
        let line = lines[n];
        if line.trim().is_empty() || is_comment(line) {
            n += 1;
            continue;
        }
        let start = n;
        let mut text = String::new();
        loop {
            let l = lines[n];
            n += 1;
            match continued(l, escape) {
                Some(head) => {
                    text.push_str(head);
                    // Comment and empty lines inside a continuation are dropped.
                    while n < lines.len() && (is_comment(lines[n]) || lines[n].trim().is_empty()) {
                        n += 1;
                    }
                    if n >= lines.len() {
                        break;
                    }
                }
                None => {
                    text.push_str(l);
                    break;
                }
            }
        }
        let mut ins = instruction(start + 1, &text, escape, lines[start])?;
        if matches!(ins.keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, quoted, strip) in heredoc_markers(&text) {
                let mut content = String::new();
                loop {
                    let Some(l) = lines.get(n) else {
                        return Err(syntax(start + 1, 1, format!("unterminated heredoc {name}")));
                    };
                    n += 1;
                    let l = if strip { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                ins.heredocs.push(Heredoc {
                    name,
                    content,
                    quoted,
                });
            }
        }
        instructions.push(ins);
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
}

/// Parses one logical line (`raw_first` is its first physical line, for columns).
fn instruction(line: usize, text: &str, escape: char, raw_first: &str) -> Result<Instruction> {
    let indent = raw_first.len() - raw_first.trim_start().len();
    let t = text.trim_start();
    let kw_end = t.find(char::is_whitespace).unwrap_or(t.len());
    let keyword = t[..kw_end].to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(syntax(
            line,
            indent + 1,
            format!("unknown instruction: {}", &t[..kw_end]),
        ));
    }
    let mut rest = t[kw_end..].trim_start();
    let mut flags = Vec::new();
    let allowed = flags_of(&keyword);
    while let Some(f) = rest.strip_prefix("--") {
        let column = indent + 1 + (t.len() - rest.len());
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        let (name, value) = word.split_once('=').unwrap_or((word, "true"));
        if !allowed.contains(&name) {
            return Err(syntax(
                line,
                column,
                format!("unknown flag: --{name} for {keyword}"),
            ));
        }
        flags.push((name.to_string(), value.to_string()));
        rest = f[end..].trim_start();
    }
    let rest = rest.trim_end();
    let args = match rest.starts_with('[') {
        true => match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => Args::Json(v),
            Err(_) => Args::Text(rest.to_string()),
        },
        false => Args::Text(rest.to_string()),
    };
    if rest.is_empty() && !matches!(keyword.as_str(), "RUN" | "CMD" | "ENTRYPOINT") {
        return Err(syntax(
            line,
            indent + 1,
            format!("{keyword} requires at least one argument"),
        ));
    }
    if keyword == "SHELL" && !matches!(args, Args::Json(_)) {
        return Err(syntax(
            line,
            indent + 1,
            "SHELL requires the arguments to be in JSON form",
        ));
    }
    let _ = escape;
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        heredocs: Vec::new(),
        text: t[kw_end..].trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (usize, usize, String) {
        match parse(src).unwrap_err() {
            Error::Syntax {
                line,
                column,
                message,
            } => (line, column, message),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn instructions_continuations_comments_json() {
        let df = parse(
            "# syntax=docker/dockerfile:1\nFROM busybox AS b\n# c\nRUN echo a \\\n  # inner\n  b\n\
             CMD [\"sh\", \"-c\"]\ncopy --from=b --chown=1:2 /x /y\n",
        )
        .unwrap();
        let k: Vec<_> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "RUN", "CMD", "COPY"]);
        assert_eq!(df.instructions[1].args, Args::Text("echo a   b".into()));
        assert_eq!(df.instructions[1].line, 4);
        assert_eq!(
            df.instructions[2].args,
            Args::Json(vec!["sh".into(), "-c".into()])
        );
        assert_eq!(df.instructions[3].flag("from"), Some("b"));
        assert_eq!(df.instructions[3].flag("chown"), Some("1:2"));
        assert_eq!(df.instructions[3].args, Args::Text("/x /y".into()));
    }

    #[test]
    fn escape_directive() {
        let df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.instructions[1].args,
            Args::Text("dir c:\\   && echo".into())
        );
        assert!(parse("# escape=x\nFROM x\n").is_err());
    }

    #[test]
    fn heredocs() {
        let df =
            parse("FROM x\nRUN <<EOF\necho hi\necho there\nEOF\nCOPY <<-'A' /f\n\tliteral $X\nA\n")
                .unwrap();
        assert_eq!(df.instructions.len(), 3);
        assert_eq!(
            df.instructions[1].heredocs[0].content,
            "echo hi\necho there\n"
        );
        let h = &df.instructions[2].heredocs[0];
        assert_eq!((h.name.as_str(), h.quoted), ("A", true));
        assert_eq!(h.content, "literal $X\n");
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(err("FROM x\n  FORM y\n").0, 2);
        assert_eq!(err("FROM x\n  FORM y\n").1, 3);
        let (l, c, m) = err("FROM x\nCOPY --frm=a b c\n");
        assert_eq!((l, c), (2, 6));
        assert!(m.contains("--frm"), "{m}");
        assert_eq!(err("FROM x\nSHELL sh -c\n").0, 2);
        assert_eq!(err("FROM x\nRUN <<EOF\necho\n").0, 2);
        assert_eq!(err("FROM\n").0, 1);
    }
}

//! Variable substitution as docker's shell lexer does it for FROM, COPY, ENV, WORKDIR, …:
//! `$V`, `${V}`, `${V:-word}`, `${V:+word}`, `${V-word}`, `${V+word}`, single and double quotes
//! (removed), the escape character, and splitting into words on unquoted white space.

use crate::{Error, Result};

/// Looks a variable up (ENV first, then ARGs in scope).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands `text` into one word (white space kept), quotes removed.
pub fn expand(text: &str, lookup: Lookup, escape: char) -> Result<String> {
    Ok(lex(text, lookup, escape, false)?.concat())
}

/// Expands `text` and splits it into words on unquoted white space.
pub fn words(text: &str, lookup: Lookup, escape: char) -> Result<Vec<String>> {
    lex(text, lookup, escape, true)
}

/// The names of the variables `text` refers to (for the cache: which build args a step uses).
pub fn referenced(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let s = &text[i + 1..];
            let s = s.strip_prefix('{').unwrap_or(s);
            let end = s
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if end > 0 {
                out.push(s[..end].to_string());
            }
        }
        i += 1;
    }
    out
}

fn bad(text: &str, what: &str) -> Error {
    Error::Substitution {
        text: text.to_string(),
        what: what.to_string(),
    }
}

fn lex(text: &str, lookup: Lookup, escape: char, split: bool) -> Result<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if split && c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            i += 1;
            continue;
        }
        in_word = true;
        match c {
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or_else(|| {
                        bad(
                            text,
                            "unexpected end of statement while looking for matching single-quote",
                        )
                    })?;
                cur.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(bad(
                                text,
                                "unexpected end of statement while looking for matching double-quote",
                            ));
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&e) if e == escape => {
                            match chars.get(i + 1) {
                                Some(&n @ ('"' | '$')) => cur.push(n),
                                Some(&n) if n == escape => cur.push(n),
                                Some(&n) => {
                                    cur.push(e);
                                    cur.push(n);
                                }
                                None => cur.push(e),
                            }
                            i += 2;
                        }
                        Some('$') => i = dollar(&chars, i, text, lookup, escape, &mut cur)?,
                        Some(&c) => {
                            cur.push(c);
                            i += 1;
                        }
                    }
                }
            }
            '$' => i = dollar(&chars, i, text, lookup, escape, &mut cur)?,
            e if e == escape => {
                if let Some(&n) = chars.get(i + 1) {
                    cur.push(n);
                }
                i += 2;
            }
            c => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if in_word || !split {
        out.push(cur);
    }
    Ok(out)
}

/// Expands the variable reference at `chars[i] == '$'`; returns the index after it.
fn dollar(
    chars: &[char],
    i: usize,
    text: &str,
    lookup: Lookup,
    escape: char,
    out: &mut String,
) -> Result<usize> {
    let name_end = |from: usize| {
        let mut j = from;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        j
    };
    match chars.get(i + 1) {
        Some('{') => {
            let start = i + 2;
            let end = name_end(start);
            let name: String = chars[start..end].iter().collect();
            if name.is_empty() {
                return Err(bad(text, "missing variable name in ${}"));
            }
            let mut depth = 1;
            let mut j = end;
            while j < chars.len() {
                match chars[j] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j >= chars.len() {
                return Err(bad(text, "missing '}'"));
            }
            let modifier: String = chars[end..j].iter().collect();
            let val = lookup(&name);
            let word = |w: &str| expand(w, lookup, escape);
            let s = match modifier.as_str() {
                "" => val.unwrap_or_default(),
                m if m.starts_with(":-") => match val {
                    Some(v) if !v.is_empty() => v,
                    _ => word(&m[2..])?,
                },
                m if m.starts_with(":+") => match val {
                    Some(v) if !v.is_empty() => word(&m[2..])?,
                    _ => String::new(),
                },
                m if m.starts_with('-') => match val {
                    Some(v) => v,
                    None => word(&m[1..])?,
                },
                m if m.starts_with('+') => match val {
                    Some(_) => word(&m[1..])?,
                    None => String::new(),
                },
                m => {
                    return Err(bad(
                        text,
                        &format!("unsupported modifier ({m}) in substitution"),
                    ));
                }
            };
            out.push_str(&s);
            Ok(j + 1)
        }
        _ => {
            let end = name_end(i + 1);
            if end == i + 1 {
                out.push('$');
                return Ok(i + 1);
            }
            let name: String = chars[i + 1..end].iter().collect();
            out.push_str(&lookup(&name).unwrap_or_default());
            Ok(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("x".into()),
            "E" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    #[test]
    fn substitution_table() {
        let cases = [
            ("$A", "x"),
            ("${A}y", "xy"),
            ("$Ay", ""),
            ("${B:-def}", "def"),
            ("${E:-def}", "def"),
            ("${E-def}", ""),
            ("${A:+set}", "set"),
            ("${B:+set}", ""),
            ("${B:-$A}", "x"),
            ("'$A'", "$A"),
            ("\"$A b\"", "x b"),
            ("\\$A", "$A"),
            ("a\\ b", "a b"),
            ("cost $", "cost $"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env, '\\').unwrap(), want, "{input}");
        }
        assert_eq!(expand("`$A", &env, '`').unwrap(), "$A");
        assert!(expand("${A", &env, '\\').is_err());
        assert!(expand("'x", &env, '\\').is_err());
    }

    #[test]
    fn words_split_on_unquoted_space() {
        assert_eq!(
            words("a \"b c\" $SP d\\ e", &env, '\\').unwrap(),
            ["a", "b c", "a b", "d e"]
        );
        assert_eq!(
            words("K=\"v w\" L=1", &env, '\\').unwrap(),
            ["K=v w", "L=1"]
        );
        assert_eq!(referenced("$A ${B:-x} $$"), ["A", "B"]);
    }
}

//! Docker-style output formatting: `--format` Go-template subset (`{{.Field}}`, `{{json .}}`,
//! `{{json .Field}}`, `table` prefix, `json` keyword, `\t` and `\n` escapes) and tabwriter
//! column alignment (docker uses minwidth 20, padding 3 for `table` output... of its columns;
//! here: columns padded to the widest cell plus 3 spaces, like `docker images`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde_json::Value;

/// How rows are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// An aligned table with a header row from the template's field names.
    Table(String),
    /// One line per row from a template.
    Template(String),
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Parses a `--format` value; `default_table` is used when none is given or it is "table".
    pub fn parse(arg: Option<&str>, default_table: &str) -> Format {
        match arg.map(str::trim) {
            None | Some("") | Some("table") => Format::Table(default_table.to_string()),
            Some("json") => Format::Json,
            Some(t) => match t.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => {
                    Format::Table(rest.trim_start().to_string())
                }
                _ => Format::Template(t.to_string()),
            },
        }
    }
}

/// One template piece.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
    Json(Option<String>),
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn parse_template(t: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(unescape(&rest[..start])));
        }
        let Some(end) = rest[start..].find("}}") else {
            bail!("template: unclosed action in {t:?}");
        };
        let action = rest[start + 2..start + end].trim();
        let piece = if let Some(arg) = action.strip_prefix("json") {
            match arg.trim() {
                "." => Piece::Json(None),
                f if f.starts_with('.') => Piece::Json(Some(f[1..].to_string())),
                _ => bail!("template: unsupported action {{{{{action}}}}}"),
            }
        } else if let Some(f) = action.strip_prefix('.') {
            Piece::Field(f.to_string())
        } else {
            bail!("template: unsupported action {{{{{action}}}}}");
        };
        out.push(piece);
        rest = &rest[start + end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(unescape(rest)));
    }
    Ok(out)
}

fn lookup<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(row, |v, k| v.get(k))
}

fn plain(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<no value>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => format!(
            "[{}]",
            a.iter()
                .map(|x| plain(Some(x)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(Value::Object(o)) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, x)| format!("{k}:{}", plain(Some(x))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(v) => v.to_string(),
    }
}

/// Renders one row. `strict`: a field the row's type does not have is an error, as docker's
/// list formatters (Go structs) say; inspect objects are maps, where it is `<no value>`.
fn render(pieces: &[Piece], row: &Value, strict: bool) -> Result<String> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Field(f) | Piece::Json(Some(f)) if strict && !has_top_field(row, f) => {
                let name = f
                    .trim_start_matches('.')
                    .split('.')
                    .next()
                    .unwrap_or_default();
                anyhow::bail!("template: executing \"\" at <.{name}>: can't evaluate field {name}");
            }
            Piece::Field(f) => s.push_str(&plain(lookup(row, f))),
            Piece::Json(None) => s.push_str(&row.to_string()),
            Piece::Json(Some(f)) => {
                s.push_str(&lookup(row, f).map_or("null".into(), |v| v.to_string()))
            }
        }
    }
    Ok(s)
}

fn has_top_field(row: &Value, path: &str) -> bool {
    match path.split('.').find(|p| !p.is_empty()) {
        Some(k) => row.get(k).is_some(),
        None => true,
    }
}

/// Header names for table columns: docker shows "IMAGE ID" for `.ID` etc.
fn header(field: &str, headers: &BTreeMap<&str, &str>) -> String {
    headers
        .get(field)
        .map(|h| h.to_string())
        .unwrap_or_else(|| field.to_uppercase())
}

/// Renders rows (JSON objects with docker's field names) of a list command in a format; a
/// field the rows do not have is a template error.
pub fn render_rows(fmt: &Format, rows: &[Value], headers: &BTreeMap<&str, &str>) -> Result<String> {
    render_all(fmt, rows, headers, true)
}

/// Renders inspect objects (maps: a missing field is `<no value>`).
pub fn render_objects(fmt: &Format, rows: &[Value]) -> Result<String> {
    render_all(fmt, rows, &BTreeMap::new(), false)
}

fn render_all(
    fmt: &Format,
    rows: &[Value],
    headers: &BTreeMap<&str, &str>,
    strict: bool,
) -> Result<String> {
    match fmt {
        Format::Json => Ok(rows.iter().map(|r| format!("{r}\n")).collect()),
        Format::Template(t) => {
            let pieces = parse_template(t)?;
            rows.iter()
                .map(|r| render(&pieces, r, strict).map(|l| l + "\n"))
                .collect()
        }
        Format::Table(t) => {
            let pieces = parse_template(t)?;
            let head: Vec<String> = pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Field(f) | Piece::Json(Some(f)) => header(f, headers),
                    Piece::Json(None) => String::new(),
                })
                .collect();
            let mut lines = vec![head.concat()];
            for r in rows {
                lines.push(render(&pieces, r, strict)?);
            }
            Ok(align(&lines))
        }
    }
}

/// Aligns tab-separated cells into columns (tabwriter with padding 3).
pub fn align(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let ncol = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncol];
    for row in &cells {
        for (i, c) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            out.push_str(c);
            if i + 1 < row.len() {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers() -> BTreeMap<&'static str, &'static str> {
        BTreeMap::from([("ID", "IMAGE ID"), ("Repository", "REPOSITORY")])
    }

    #[test]
    fn table_aligns_columns_with_docker_headers() {
        let rows = vec![
            json!({"Repository": "busybox", "Tag": "latest", "ID": "abc"}),
            json!({"Repository": "a-much-longer-name", "Tag": "1", "ID": "def"}),
        ];
        let f = Format::parse(Some("table {{.Repository}}\t{{.Tag}}\t{{.ID}}"), "");
        let out = render_rows(&f, &rows, &headers()).unwrap();
        assert_eq!(
            out,
            "REPOSITORY           TAG      IMAGE ID\n\
             busybox              latest   abc\n\
             a-much-longer-name   1        def\n"
        );
    }

    #[test]
    fn templates_json_and_errors() {
        let rows = vec![json!({"ID": "abc", "Labels": {"a": "b"}})];
        let t = Format::parse(Some("{{.ID}}: {{json .Labels}}"), "");
        assert_eq!(
            render_rows(&t, &rows, &headers()).unwrap(),
            "abc: {\"a\":\"b\"}\n"
        );
        let j = Format::parse(Some("json"), "");
        assert_eq!(
            render_rows(&j, &rows, &headers()).unwrap(),
            format!("{}\n", rows[0])
        );
        assert_eq!(
            render_objects(&Format::parse(Some("{{.Nope}}"), ""), &rows).unwrap(),
            "<no value>\n"
        );
        let err = render_rows(&Format::parse(Some("{{.Nope}}"), ""), &rows, &headers());
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("can't evaluate field Nope")
        );
        assert!(render_rows(&Format::parse(Some("{{.ID"), ""), &rows, &headers()).is_err());
        assert_eq!(Format::parse(None, "x"), Format::Table("x".into()));
    }
}

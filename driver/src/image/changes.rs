//! `cairn import -c`: Dockerfile-style changes applied to a container config, and the config
//! of an imported rootfs.

use super::*;
use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

use crate::refs::validate_digest;

// ---------------------------------------------------------------------------------------------
// `import` changes (Dockerfile instructions applied to a config)
// ---------------------------------------------------------------------------------------------

/// The instructions `import --change` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Label,
    StopSignal,
    User,
    Volume,
    WorkDir,
}

/// One `--change` (`-c`) value, e.g. `ENV A=b`, `CMD ["sh"]`, `EXPOSE 80/udp`. Parsing checks
/// the syntax; variables (`$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR:+x}`) are expanded when applied,
/// against the environment at that point, as docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    kind: ChangeKind,
    args: String,
    original: String,
}

impl Change {
    pub fn parse(s: &str) -> Result<Change> {
        let original = s.to_string();
        let trimmed = s.trim();
        let (word, args) = match trimmed.find(char::is_whitespace) {
            Some(i) => (&trimmed[..i], trimmed[i..].trim()),
            None => (trimmed, ""),
        };
        let kind = match word.to_ascii_uppercase().as_str() {
            "CMD" => ChangeKind::Cmd,
            "ENTRYPOINT" => ChangeKind::Entrypoint,
            "ENV" => ChangeKind::Env,
            "EXPOSE" => ChangeKind::Expose,
            "LABEL" => ChangeKind::Label,
            "STOPSIGNAL" => ChangeKind::StopSignal,
            "USER" => ChangeKind::User,
            "VOLUME" => ChangeKind::Volume,
            "WORKDIR" => ChangeKind::WorkDir,
            _ => return Err(ImageError::UnsupportedChange(word.to_string())),
        };
        let change = Change {
            kind,
            args: args.to_string(),
            original,
        };
        // Dry run on an empty config so syntax errors surface at parse time; variables expand
        // to a placeholder there, so `WORKDIR $D` is not taken for an empty WORKDIR.
        change.apply_with(&mut ContainerConfig::default(), &mut false, true)?;
        Ok(change)
    }

    pub fn kind(&self) -> ChangeKind {
        self.kind
    }
    /// The arguments after the instruction word.
    pub fn args(&self) -> &str {
        &self.args
    }

    fn err(&self, reason: impl Into<String>) -> ImageError {
        ImageError::InvalidChange {
            change: self.original.clone(),
            reason: reason.into(),
        }
    }

    fn apply(&self, c: &mut ContainerConfig, cmd_set: &mut bool) -> Result<()> {
        self.apply_with(c, cmd_set, false)
    }

    fn apply_with(&self, c: &mut ContainerConfig, cmd_set: &mut bool, dry_run: bool) -> Result<()> {
        let env_list = c.env.clone().unwrap_or_default();
        let lookup = |name: &str| -> Option<String> {
            if dry_run {
                return Some("x".into());
            }
            env_list.iter().rev().find_map(|e| {
                e.split_once('=')
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        let env: &dyn Fn(&str) -> Option<String> = &lookup;
        let words = |split: bool| process_words(&self.args, env, split).map_err(|e| self.err(e));
        let need_args = || {
            if self.args.is_empty() {
                Err(self.err("requires at least one argument"))
            } else {
                Ok(())
            }
        };
        match self.kind {
            ChangeKind::Env => {
                need_args()?;
                for (k, v) in self.key_values(env, "ENV")? {
                    let list = c.env.get_or_insert_with(Vec::new);
                    let prefix = format!("{k}=");
                    let entry = format!("{k}={v}");
                    match list.iter_mut().find(|e| e.starts_with(&prefix) || **e == k) {
                        Some(e) => *e = entry,
                        None => list.push(entry),
                    }
                }
            }
            ChangeKind::Label => {
                need_args()?;
                for (k, v) in self.key_values(env, "LABEL")? {
                    c.labels.get_or_insert_with(BTreeMap::new).insert(k, v);
                }
            }
            ChangeKind::Cmd => {
                need_args()?;
                c.cmd = Some(self.cmd_line(c));
                *cmd_set = true;
            }
            ChangeKind::Entrypoint => {
                need_args()?;
                c.entrypoint = Some(self.cmd_line(c));
                if !*cmd_set {
                    c.cmd = None;
                }
            }
            ChangeKind::WorkDir => {
                let w = words(false)?.concat();
                if w.is_empty() {
                    return Err(self.err("WORKDIR requires exactly one argument"));
                }
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("/{}/{w}", c.working_dir.as_deref().unwrap_or(""))
                };
                c.working_dir = Some(clean_path(&joined));
            }
            ChangeKind::User => {
                let u = words(false)?.concat();
                if u.is_empty() {
                    return Err(self.err("USER requires exactly one argument"));
                }
                c.user = Some(u);
            }
            ChangeKind::Expose => {
                let ports = words(true)?;
                if ports.is_empty() {
                    return Err(self.err("EXPOSE requires at least one argument"));
                }
                for spec in ports {
                    for p in parse_port_spec(&spec).map_err(|e| self.err(e))? {
                        c.exposed_ports
                            .get_or_insert_with(BTreeMap::new)
                            .insert(p, Empty {});
                    }
                }
            }
            ChangeKind::Volume => {
                let vols = match parse_json_array(&self.args) {
                    Some(v) => v,
                    None => words(true)?,
                };
                if vols.is_empty() {
                    return Err(self.err("VOLUME requires at least one argument"));
                }
                for v in vols {
                    let v = v.trim();
                    if v.is_empty() {
                        return Err(self.err("VOLUME specified can not be an empty string"));
                    }
                    c.volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v.to_string(), Empty {});
                }
            }
            ChangeKind::StopSignal => {
                let s = words(false)?.concat();
                if !valid_signal(&s) {
                    return Err(self.err(format!("invalid signal: {s}")));
                }
                c.stop_signal = Some(s);
            }
        }
        Ok(())
    }

    /// JSON form as is; shell form wrapped in the config's Shell (default `/bin/sh -c`).
    fn cmd_line(&self, c: &ContainerConfig) -> Vec<String> {
        if let Some(v) = parse_json_array(&self.args) {
            return v;
        }
        let mut out = c
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        out.push(self.args.clone());
        out
    }

    /// `K=V K2="v 2"` pairs, or the legacy `K value with spaces` form.
    fn key_values(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        what: &str,
    ) -> Result<Vec<(String, String)>> {
        let first = self.args.split_whitespace().next().unwrap_or("");
        if !first.contains('=') {
            let (k, rest) = match self.args.find(char::is_whitespace) {
                Some(i) => (&self.args[..i], self.args[i..].trim_start()),
                None => return Err(self.err(format!("{what} must have two arguments"))),
            };
            let key = process_words(k, env, false)
                .map_err(|e| self.err(e))?
                .concat();
            let value = process_words(rest, env, false)
                .map_err(|e| self.err(e))?
                .concat();
            return Ok(vec![(key, value)]);
        }
        let mut out = Vec::new();
        for raw in split_raw_words(&self.args).map_err(|e| self.err(e))? {
            let Some((k, v)) = raw.split_once('=') else {
                return Err(self.err(format!(
                    "can't find = in {raw:?}: must be of the form name=value"
                )));
            };
            let key = process_words(k, env, false)
                .map_err(|e| self.err(e))?
                .concat();
            if key.is_empty() {
                return Err(self.err(format!("{what} names can not be blank")));
            }
            let value = process_words(v, env, false)
                .map_err(|e| self.err(e))?
                .concat();
            out.push((key, value));
        }
        Ok(out)
    }
}

impl FromStr for Change {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Change> {
        Change::parse(s)
    }
}

/// Applies changes in order to `config` (ENTRYPOINT clears a CMD inherited from before the
/// changes unless a CMD change came first, as in a Dockerfile).
pub fn apply_changes(config: &mut ContainerConfig, changes: &[Change]) -> Result<()> {
    let mut cmd_set = false;
    for c in changes {
        c.apply(config, &mut cmd_set)?;
    }
    Ok(())
}

/// Options for [`new_config_for_import`] besides the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Goes to `comment` and the history entry's `comment`; omitted when empty.
    pub message: String,
    pub created: Timestamp,
    /// GOARCH / GOOS names; see [`host_platform`].
    pub architecture: String,
    pub os: String,
}

impl ImportOptions {
    /// The host platform, created now.
    pub fn new(message: impl Into<String>) -> ImportOptions {
        let (architecture, os) = host_platform();
        ImportOptions {
            message: message.into(),
            created: Timestamp::now(),
            architecture: architecture.to_string(),
            os: os.to_string(),
        }
    }
}

/// The host's (GOARCH, GOOS).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    (arch, std::env::consts::OS)
}

#[derive(Serialize)]
pub(crate) struct ImportConfigOut<'a> {
    architecture: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    comment: &'a str,
    config: &'a ContainerConfig,
    created: String,
    history: [HistoryOut<'a>; 1],
    os: &'a str,
    rootfs: RootFsOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct HistoryOut<'a> {
    created: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    comment: &'a str,
}

#[derive(Serialize)]
pub(crate) struct RootFsOut<'a> {
    #[serde(rename = "type")]
    typ: &'static str,
    diff_ids: &'a [String],
}

/// Builds the config for `cairn import`: the changes applied to an empty config, one history
/// entry, top-level keys sorted as moby writes them. Same inputs give the same bytes.
pub fn new_config_for_import(
    diff_ids: &[String],
    changes: &[Change],
    opts: &ImportOptions,
) -> Result<ImageConfig> {
    for (i, d) in diff_ids.iter().enumerate() {
        validate_digest(d)
            .map_err(|e| invalid(CONFIG, format!("rootfs.diff_ids[{i}]"), e.to_string()))?;
    }
    let mut config = ContainerConfig::default();
    apply_changes(&mut config, changes)?;
    let created = opts.created.to_rfc3339();
    let out = ImportConfigOut {
        architecture: &opts.architecture,
        comment: &opts.message,
        config: &config,
        created: created.clone(),
        history: [HistoryOut {
            created,
            comment: &opts.message,
        }],
        os: &opts.os,
        rootfs: RootFsOut {
            typ: "layers",
            diff_ids,
        },
    };
    let raw = serde_json::to_vec(&out).map_err(|source| ImageError::Json {
        what: CONFIG,
        source,
    })?;
    ImageConfig::from_bytes(raw)
}

/// `["a", "b"]` when `s` is a JSON array of strings, else None (shell form).
pub(crate) fn parse_json_array(s: &str) -> Option<Vec<String>> {
    if !s.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str(s).ok()
}

/// Splits on unquoted whitespace, keeping quotes and escapes (buildkit's `parseWords`).
pub(crate) fn split_raw_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (Some('\''), '\'') | (Some('"'), '"') => {
                quote = None;
                cur.push(ch);
            }
            (None, '\'' | '"') => {
                quote = Some(ch);
                cur.push(ch);
            }
            (q, '\\') if q != Some('\'') => {
                cur.push(ch);
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            _ => cur.push(ch),
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "unexpected end of statement while looking for matching {q}"
        ));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Shell-like word processing (buildkit's lexer, the parts Dockerfile instructions use):
/// quotes removed, backslash escapes, `$VAR`/`${VAR}`/`${VAR:-d}`/`${VAR:+a}` expanded from
/// `lookup`. With `split`, unquoted whitespace separates words.
pub(crate) fn process_words(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    split: bool,
) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            c if c.is_whitespace() && split => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.get(i) {
                    Some(&n) => {
                        cur.push(n);
                        i += 1;
                    }
                    None => cur.push('\\'),
                }
            }
            '\'' => {
                in_word = true;
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("unexpected end of statement while looking for matching single-quote")?;
                cur.extend(&chars[i..i + end]);
                i += end + 1;
            }
            '"' => {
                in_word = true;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        );
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.get(i), Some('"' | '\\' | '$')) => {
                            cur.push(chars[i]);
                            i += 1;
                        }
                        '$' => i = expand_var(&chars, i, lookup, &mut cur)?,
                        _ => cur.push(c),
                    }
                }
            }
            '$' => {
                in_word = true;
                i = expand_var(&chars, i, lookup, &mut cur)?;
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Expands the variable reference starting at `chars[i]` (just after `$`); returns the index
/// after it.
pub(crate) fn expand_var(
    chars: &[char],
    mut i: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<usize, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(i) {
        Some('{') => {
            i += 1;
            let start = i;
            while i < chars.len() && is_name(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if name.is_empty() {
                return Err("bad substitution: empty variable name".into());
            }
            let close = chars[i..]
                .iter()
                .position(|&c| c == '}')
                .ok_or("missing '}' in variable substitution")?;
            let modifier: String = chars[i..i + close].iter().collect();
            let value = lookup(&name);
            match modifier.as_str() {
                "" => out.push_str(&value.unwrap_or_default()),
                m if m.starts_with(":-") => match value.filter(|v| !v.is_empty()) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&m[2..]),
                },
                m if m.starts_with(":+") => {
                    if value.is_some_and(|v| !v.is_empty()) {
                        out.push_str(&m[2..]);
                    }
                }
                m => return Err(format!("unsupported modifier ({m}) in substitution")),
            }
            Ok(i + close + 1)
        }
        Some(&c) if is_name(c) && !c.is_ascii_digit() => {
            let start = i;
            while i < chars.len() && is_name(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            out.push_str(&lookup(&name).unwrap_or_default());
            Ok(i)
        }
        _ => {
            out.push('$');
            Ok(i)
        }
    }
}

/// Go's `path.Clean` for absolute paths.
pub(crate) fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["8000/tcp", "8001/tcp", "8002/tcp"]`.
pub(crate) fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {s}"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for container port: {ports}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// moby's `signal.ParseSignal`: a non-zero number, or a Linux signal name with or without `SIG`.
pub(crate) fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<i64>() {
        return n != 0;
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
        "RTMIN", "RTMAX",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    let offset = |prefix: &str, max: u32| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=max).contains(&n))
    };
    offset("RTMIN+", 15) || offset("RTMAX-", 14)
}

//! One instruction of a stage: metadata instructions edit the config (a history entry with
//! empty_layer), RUN runs a container and COPY/ADD/WORKDIR write through a mounted work
//! container, each committed as a layer. Every step goes through the cache.

use serde_json::{Value, json};

use crate::builder::{Build, State, args_text};
use crate::cache::Key;
use crate::config;
use crate::copy::{self, Meta, Source};
use crate::parser::{Args, Instruction};
use crate::vars::{self, Lookup};
use crate::work::Work;
use crate::{Error, Result};

/// `ARG a=1 b` → [(a, Some(1)), (b, None)].
pub fn arg_decls(
    ins: &Instruction,
    look: Lookup,
    escape: char,
) -> Result<Vec<(String, Option<String>)>> {
    let Args::Text(t) = &ins.args else {
        return Err(Error::at(ins.line, "ARG requires a name"));
    };
    Ok(vars::words(t, look, escape)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect())
}

/// `K=V K2=V2` or the legacy `K V…` form of ENV and LABEL.
fn pairs(ins: &Instruction, look: Lookup, escape: char) -> Result<Vec<(String, String)>> {
    let Args::Text(t) = &ins.args else {
        return Err(Error::at(
            ins.line,
            format!("{} requires arguments", ins.keyword),
        ));
    };
    let first = t.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let rest = t[first.len()..].trim_start();
        if rest.is_empty() {
            return Err(Error::at(
                ins.line,
                format!("{} must have two arguments", ins.keyword),
            ));
        }
        return Ok(vec![(first.to_string(), vars::expand(rest, look, escape)?)]);
    }
    vars::words(t, look, escape)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::at(
                ins.line,
                format!("{}: key=value expected, got {w:?}", ins.keyword),
            )),
        })
        .collect()
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds (the runtime's parser, as for
/// `logs --since`).
fn duration_ns(s: &str) -> Option<i64> {
    cairn_runtime::logs::parse_duration(s).and_then(|ns| i64::try_from(ns).ok())
}

/// `#(nop)` history text of a metadata instruction, as the classic builder writes it.
fn nop(ins: &Instruction) -> String {
    format!(
        "/bin/sh -c #(nop)  {} {}",
        ins.keyword,
        args_text(&ins.args)
    )
}

/// `--chown=user:group` through the rootfs's /etc/passwd and /etc/group.
fn owner(spec: &str, root: &std::path::Path, line: usize) -> Result<(u32, u32)> {
    let (u, g) = spec.split_once(':').unwrap_or((spec, ""));
    let read = |f: &str| std::fs::read_to_string(copy::resolve_in(root, f)).unwrap_or_default();
    let find = |file: &str, name: &str, field: usize| -> Option<u32> {
        read(file).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(field)?.parse().ok())?
        })
    };
    let uid = u
        .parse()
        .ok()
        .or_else(|| find("/etc/passwd", u, 2))
        .ok_or_else(|| Error::at(line, format!("unable to find user {u}")))?;
    let gid = match g {
        "" => u
            .parse::<u32>()
            .ok()
            .or_else(|| find("/etc/passwd", u, 3))
            .unwrap_or(uid),
        g => g
            .parse()
            .ok()
            .or_else(|| find("/etc/group", g, 2))
            .ok_or_else(|| Error::at(line, format!("unable to find group {g}")))?,
    };
    Ok((uid, gid))
}

impl Build<'_> {
    /// Runs one instruction of stage `stage`.
    pub(crate) fn instruction(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        stage: usize,
    ) -> Result<()> {
        let escape = self.escape;
        let look = |k: &str| st.lookup(k);
        let mut key = Key::new(&st.rec.id);
        key.add(&ins.keyword).add(&ins.text);
        for (k, v) in &ins.flags {
            key.add(k).add(v);
        }
        for (k, v) in &st.args {
            key.add(k).add(v.as_deref().unwrap_or("\0"));
        }
        match ins.keyword.as_str() {
            "ARG" => {
                for (k, v) in arg_decls(ins, &look, escape)? {
                    let v = self.arg_value(&k, v, false);
                    st.args.retain(|(n, _)| n != &k);
                    st.args.push((k, v));
                }
                self.meta(st, key, ins, |_| {})
            }
            "RUN" => self.run(st, key, ins, stage),
            "COPY" | "ADD" => self.copy(st, key, ins, stage),
            "WORKDIR" => {
                let Args::Text(t) = &ins.args else {
                    return Err(Error::at(ins.line, "WORKDIR requires a path"));
                };
                let w = vars::expand(t, &look, escape)?;
                let path = match w.starts_with('/') {
                    true => w,
                    false => format!("{}/{w}", st.workdir().trim_end_matches('/')),
                };
                self.cached(st, key, |b, st| {
                    let mut cfg = st.cfg.clone();
                    cfg.set("WorkingDir", json!(path));
                    let work = Work::mounted(b.engine, &st.rec)?;
                    let dir = copy::resolve_in(work.root(), &path);
                    if dir.is_dir() {
                        drop(work);
                        cfg.step(&nop(ins), None, &b.created());
                        return config::record(b.engine.images(), &st.rec, &cfg.to_bytes(), None);
                    }
                    std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
                    let change = cairn_driver::image::Change::parse(&format!("WORKDIR {path}"))
                        .map_err(|e| Error::at(ins.line, e.to_string()))?;
                    work.commit(&nop(ins), vec![change], b.epoch())
                })
            }
            _ => {
                let shell = st.shell();
                let exec = |args: &Args| match args {
                    Args::Json(v) => v.clone(),
                    Args::Text(t) => shell.iter().cloned().chain([t.clone()]).collect(),
                };
                let text = match &ins.args {
                    Args::Text(t) => t.clone(),
                    Args::Json(_) => String::new(),
                };
                match ins.keyword.as_str() {
                    "CMD" => {
                        st.cmd_set = true;
                        let v = exec(&ins.args);
                        self.meta(st, key, ins, |c| c.set("Cmd", json!(v)))
                    }
                    "ENTRYPOINT" => {
                        let v = exec(&ins.args);
                        let reset = !st.cmd_set;
                        self.meta(st, key, ins, |c| {
                            c.set("Entrypoint", json!(v));
                            if reset {
                                c.set("Cmd", Value::Null);
                            }
                        })
                    }
                    "SHELL" => {
                        let v = exec(&ins.args);
                        self.meta(st, key, ins, |c| c.set("Shell", json!(v)))
                    }
                    "ENV" => {
                        let p = pairs(ins, &look, escape)?;
                        self.meta(st, key, ins, |c| {
                            p.iter().for_each(|(k, v)| c.set_env(k, v));
                        })
                    }
                    "LABEL" => {
                        let p = pairs(ins, &look, escape)?;
                        self.meta(st, key, ins, |c| {
                            p.iter()
                                .for_each(|(k, v)| c.insert_in("Labels", k, json!(v)));
                        })
                    }
                    "EXPOSE" => {
                        let ports = vars::words(&text, &look, escape)?;
                        self.meta(st, key, ins, |c| {
                            for p in &ports {
                                let p = if p.contains('/') {
                                    p.clone()
                                } else {
                                    format!("{p}/tcp")
                                };
                                c.insert_in("ExposedPorts", &p, json!({}));
                            }
                        })
                    }
                    "VOLUME" => {
                        let vols = match &ins.args {
                            Args::Json(v) => v.clone(),
                            Args::Text(t) => vars::words(t, &look, escape)?,
                        };
                        self.meta(st, key, ins, |c| {
                            vols.iter()
                                .for_each(|v| c.insert_in("Volumes", v, json!({})));
                        })
                    }
                    "USER" => {
                        let u = vars::expand(&text, &look, escape)?;
                        self.meta(st, key, ins, |c| c.set("User", json!(u)))
                    }
                    "STOPSIGNAL" => {
                        let s = vars::expand(&text, &look, escape)?;
                        self.meta(st, key, ins, |c| c.set("StopSignal", json!(s)))
                    }
                    "MAINTAINER" => self.meta(st, key, ins, |c| {
                        c.v.insert("author".into(), json!(text));
                    }),
                    "ONBUILD" => {
                        let first = text
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_ascii_uppercase();
                        if matches!(first.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                            return Err(Error::at(
                                ins.line,
                                format!("{first} isn't allowed as an ONBUILD trigger"),
                            ));
                        }
                        self.meta(st, key, ins, |c| {
                            let mut l = c.list("OnBuild").unwrap_or_default();
                            l.push(text.clone());
                            c.set("OnBuild", json!(l));
                        })
                    }
                    "HEALTHCHECK" => {
                        let hc = self.healthcheck(ins, &shell)?;
                        self.meta(st, key, ins, |c| c.set("Healthcheck", hc))
                    }
                    k => Err(Error::at(ins.line, format!("unknown instruction: {k}"))),
                }
            }
        }
    }

    /// HEALTHCHECK's config value.
    fn healthcheck(&self, ins: &Instruction, shell: &[String]) -> Result<Value> {
        let text = args_text(&ins.args);
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(json!({"Test": ["NONE"]}));
        }
        let Some(rest) = text
            .trim_start()
            .get(..3)
            .filter(|c| c.eq_ignore_ascii_case("CMD"))
            .map(|_| text.trim_start()[3..].trim())
        else {
            return Err(Error::at(ins.line, "HEALTHCHECK requires NONE or CMD"));
        };
        let test = match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => std::iter::once("CMD".to_string())
                .chain(v)
                .collect::<Vec<_>>(),
            Err(_) => vec!["CMD-SHELL".to_string(), rest.to_string()],
        };
        let _ = shell;
        let mut hc = json!({"Test": test});
        for (flag, field) in [
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start-period", "StartPeriod"),
            ("start-interval", "StartInterval"),
        ] {
            if let Some(v) = ins.flag(flag) {
                let ns = duration_ns(v)
                    .ok_or_else(|| Error::at(ins.line, format!("invalid duration --{flag}={v}")))?;
                hc[field] = json!(ns);
            }
        }
        if let Some(r) = ins.flag("retries") {
            let n: i64 = r
                .parse()
                .map_err(|_| Error::at(ins.line, format!("invalid --retries={r}")))?;
            hc["Retries"] = json!(n);
        }
        Ok(hc)
    }

    /// A metadata-only step: `edit` the config, one empty_layer history entry.
    fn meta(
        &mut self,
        st: &mut State,
        key: Key,
        ins: &Instruction,
        edit: impl FnOnce(&mut config::Config),
    ) -> Result<()> {
        self.cached(st, key, |b, st| {
            let mut cfg = st.cfg.clone();
            edit(&mut cfg);
            cfg.step(&nop(ins), None, &b.created());
            config::record(b.engine.images(), &st.rec, &cfg.to_bytes(), None)
        })
    }

    /// RUN: the command in a container on the parent, its changes committed.
    fn run(
        &mut self,
        st: &mut State,
        mut key: Key,
        ins: &Instruction,
        _stage: usize,
    ) -> Result<()> {
        let shell = st.shell();
        let cmd: Vec<String> = match (&ins.args, ins.heredocs.first()) {
            (Args::Text(t), Some(h)) if t.trim().starts_with("<<") => {
                shell.iter().cloned().chain([h.content.clone()]).collect()
            }
            (Args::Json(v), _) => v.clone(),
            (Args::Text(t), _) => shell.iter().cloned().chain([t.clone()]).collect(),
        };
        let shown = match &ins.args {
            Args::Json(v) => serde_json::to_string(v).unwrap_or_default(),
            Args::Text(_) => cmd.join(" "),
        };
        let env = st.arg_env();
        let created_by = match env.is_empty() {
            true => shown.clone(),
            false => format!("|{} {} {shown}", env.len(), env.join(" ")),
        };
        let network = match self.opts.network_host || ins.flag("network") == Some("host") {
            true => cairn_runtime::spec::Network::Host,
            false => cairn_runtime::spec::Network::None,
        };
        let mounts = ins
            .flag_all("mount")
            .iter()
            .map(|m| crate::mounts::parse(m, ins.line))
            .collect::<Result<Vec<_>>>()?;
        for m in mounts.iter().filter(|m| m.kind == "bind") {
            let src = Source {
                root: &self.opts.context.dir,
                ignore: None,
            };
            let sel = copy::select(&src, &[m.source.clone().unwrap_or_else(|| ".".into())])?;
            key.add(&copy::hash(&src, &sel)?.to_string());
        }
        let workdir = st.workdir();
        self.cached(st, key, |b, st| {
            let scratch = tempfile::Builder::new()
                .prefix("build-run-")
                .tempdir_in(b.engine.store().tmp_dir())
                .map_err(Error::io("create", b.engine.store().tmp_dir()))?;
            let sources = crate::mounts::Sources {
                store_root: b.engine.layout().root(),
                context: &b.opts.context.dir,
                secrets: &b.opts.secrets,
                scratch: scratch.path(),
            };
            let volumes = crate::mounts::volumes(&mounts, &sources, &workdir, ins.line)?;
            let options = cairn_runtime::RunOptions {
                volumes,
                env,
                entrypoint: Some(String::new()),
                command: cmd,
                network,
                ..Default::default()
            };
            let mut started = |id: &str| {
                (b.progress)(crate::Event::Running {
                    container: &id[..12],
                })
            };
            let (work, code) = Work::run(b.engine, &st.rec, options, &mut started)?;
            let id = work.container.id.clone();
            if code != 0 {
                drop(work);
                return Err(Error::RunFailed {
                    command: shown,
                    code,
                });
            }
            let rec = work.commit(&created_by, vec![], b.epoch())?;
            drop(work);
            (b.progress)(crate::Event::Removed {
                container: &id[..12],
            });
            Ok(rec)
        })
    }

    /// COPY / ADD.
    fn copy(
        &mut self,
        st: &mut State,
        mut key: Key,
        ins: &Instruction,
        stage: usize,
    ) -> Result<()> {
        let look = |k: &str| st.lookup(k);
        let mut words = match &ins.args {
            Args::Json(v) => v.clone(),
            Args::Text(t) => vars::words(t, &look, self.escape)?,
        };
        let heredoc = ins.heredocs.first().map(|h| h.content.clone());
        if words.len() < 2 && heredoc.is_none() {
            return Err(Error::at(
                ins.line,
                format!("{} requires at least two arguments", ins.keyword),
            ));
        }
        let dest = words.pop().unwrap_or_default();
        let from = ins
            .flag("from")
            .map(|f| vars::expand(f, &look, self.escape))
            .transpose()?;
        let from_image = from
            .as_deref()
            .map(|f| self.image_named(f, stage))
            .transpose()?;
        let mode = ins
            .flag("chmod")
            .map(|m| {
                u32::from_str_radix(m, 8)
                    .map_err(|_| Error::at(ins.line, format!("invalid --chmod={m}")))
            })
            .transpose()?;
        let workdir = st.workdir();
        let extract = ins.keyword == "ADD";
        let tmp_heredoc;
        let from_work = match &from_image {
            Some(img) => Some(Work::mounted(self.engine, img)?),
            None => None,
        };
        let (src_root, ignore) = match (&from_work, &heredoc) {
            (Some(w), _) => (w.root().to_path_buf(), None),
            (None, Some(content)) => {
                tmp_heredoc = tempfile::tempdir().map_err(Error::io("create", "/tmp"))?;
                let name = words
                    .first()
                    .map(|w| {
                        w.trim_start_matches("<<-")
                            .trim_start_matches("<<")
                            .trim_matches(['"', '\''])
                    })
                    .unwrap_or("heredoc")
                    .to_string();
                let p = tmp_heredoc.path().join(&name);
                std::fs::write(&p, content).map_err(Error::io("write", &p))?;
                words = vec![name];
                (tmp_heredoc.path().to_path_buf(), None)
            }
            (None, None) => (
                self.opts.context.dir.clone(),
                Some(&self.opts.context.ignore),
            ),
        };
        let src = Source {
            root: &src_root,
            ignore,
        };
        let selected = copy::select(&src, &words)?;
        match &from_image {
            Some(img) => key.add(&img.id.to_string()),
            None => key.add(&copy::hash(&src, &selected)?.to_string()),
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {} {} in {dest} ",
            ins.keyword,
            selected.join(" ")
        );
        let line = ins.line;
        let chown = ins.flag("chown").map(str::to_string);
        self.cached(st, key, |b, st| {
            let work = Work::mounted(b.engine, &st.rec)?;
            let owner = chown
                .as_deref()
                .map(|c| owner(c, work.root(), line))
                .transpose()?;
            let meta = Meta { owner, mode };
            copy::copy(&src, &selected, &dest, &workdir, work.root(), meta, extract).map_err(
                |e| match e {
                    Error::Instruction { message, .. } => Error::at(line, message),
                    e => e,
                },
            )?;
            work.commit(&created_by, vec![], b.epoch())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns("30s"), Some(30_000_000_000));
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("x"), None);
    }
}

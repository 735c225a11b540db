//! The build: parse, cut into stages, build the stages the target needs in order, each step
//! looked up in the cache first, then tag the result. Progress is reported through events
//! (the CLI prints them docker-like); RUN output goes straight to this process's stdout and
//! stderr.

use std::collections::HashMap;
use std::path::PathBuf;

use cairn_driver::digest::Digest;
use cairn_driver::image::Timestamp;
use cairn_driver::images::ImageRecord;
use cairn_engine::Engine;

use crate::cache::{Cache, Key};
use crate::config::{self, Config};
use crate::context::Context;
use crate::parser::{Args, Instruction, parse};
use crate::stages::{Graph, Stage};
use crate::{Result, vars};

/// What `cairn build` was asked.
#[derive(Debug)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    pub context: Context,
    /// Normalised references to tag the result with.
    pub tags: Vec<String>,
    /// `--build-arg K=V` (or `K`: the value from this process's environment).
    pub build_args: Vec<String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--label K=V`, added to the final image.
    pub labels: Vec<(String, String)>,
    /// `--network host` (else RUN has no network).
    pub network_host: bool,
    /// SOURCE_DATE_EPOCH: every `created` time of the new config and history.
    pub source_date_epoch: Option<i64>,
    /// `--secret id=ID,src=PATH`: ID → file, for `RUN --mount=type=secret`.
    pub secrets: HashMap<String, PathBuf>,
}

/// A progress event.
#[derive(Debug)]
pub enum Event<'a> {
    /// `Step N/M : INSTRUCTION args`.
    Step {
        n: usize,
        total: usize,
        text: &'a str,
    },
    /// The step's result came from the cache.
    CacheHit,
    /// A RUN container started.
    Running { container: &'a str },
    /// The step's container was removed.
    Removed { container: &'a str },
    /// The step is done; the image it produced.
    Done { image: &'a Digest },
}

/// The state of a stage being built.
pub(crate) struct State {
    pub rec: ImageRecord,
    pub cfg: Config,
    /// ARGs declared in this stage, with their values.
    pub args: Vec<(String, Option<String>)>,
    /// Cmd was set in this stage (ENTRYPOINT resets only an inherited one).
    pub cmd_set: bool,
}

impl State {
    /// Variable lookup for substitution: ENV wins over ARG.
    pub fn lookup(&self, k: &str) -> Option<String> {
        self.cfg.env(k).or_else(|| {
            self.args
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
        })
    }

    /// The stage's SHELL.
    pub fn shell(&self) -> Vec<String> {
        self.cfg
            .list("Shell")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// `K=V` for the ARGs with values that ENV does not override (RUN's environment).
    pub fn arg_env(&self) -> Vec<String> {
        self.args
            .iter()
            .filter(|(k, _)| self.cfg.env(k).is_none())
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }

    pub fn workdir(&self) -> String {
        self.cfg
            .string("WorkingDir")
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }
}

/// Values of the args users may set without declaring them, and the platform args.
fn predefined(name: &str) -> Option<String> {
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    match name {
        "TARGETPLATFORM" | "BUILDPLATFORM" => Some(format!("linux/{arch}")),
        "TARGETOS" | "BUILDOS" => Some("linux".into()),
        "TARGETARCH" | "BUILDARCH" => Some(arch),
        "TARGETVARIANT" | "BUILDVARIANT" => Some(String::new()),
        _ => None,
    }
}

/// Everything one build shares across its stages.
pub(crate) struct Build<'a> {
    pub engine: &'a Engine,
    pub opts: &'a BuildOptions,
    pub escape: char,
    pub cache: Cache,
    /// --build-arg values.
    pub build_args: HashMap<String, String>,
    /// Global ARG values (before the first FROM).
    pub global: Vec<(String, Option<String>)>,
    /// Built stages: index → image.
    pub built: HashMap<usize, ImageRecord>,
    pub graph: Graph,
    pub step: usize,
    pub total: usize,
    pub progress: &'a mut dyn FnMut(Event),
}

impl Build<'_> {
    /// SOURCE_DATE_EPOCH as a time.
    pub fn epoch(&self) -> Option<Timestamp> {
        self.opts
            .source_date_epoch
            .map(|secs| Timestamp { secs, nanos: 0 })
    }

    /// The `created` time of new configs.
    pub fn created(&self) -> String {
        match self.opts.source_date_epoch {
            Some(s) => Timestamp { secs: s, nanos: 0 }.to_rfc3339(),
            None => Timestamp::now().to_rfc3339(),
        }
    }

    /// The value of an ARG declaration `NAME[=default]` (a --build-arg wins).
    pub fn arg_value(&self, name: &str, default: Option<String>, global: bool) -> Option<String> {
        if let Some(v) = self.build_args.get(name) {
            return Some(v.clone());
        }
        if default.is_some() {
            return default;
        }
        if !global && let Some((_, v)) = self.global.iter().find(|(n, _)| n == name) {
            return v.clone();
        }
        predefined(name)
    }

    /// Expands FROM's base with the global args.
    fn base_of(&self, s: &Stage) -> String {
        let look = |k: &str| {
            self.global
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
        };
        vars::expand(&s.base, &look, self.escape).unwrap_or_else(|_| s.base.clone())
    }

    fn event(&mut self, e: Event) {
        (self.progress)(e)
    }

    /// Announces the next step.
    pub fn announce(&mut self, ins: &Instruction) {
        self.step += 1;
        let text = format!("{} {}", ins.keyword, ins.text);
        let (n, total) = (self.step, self.total);
        self.event(Event::Step {
            n,
            total,
            text: &text,
        });
    }

    /// Runs `make` unless the cache has `key`; records and reports the result.
    pub fn cached(
        &mut self,
        st: &mut State,
        key: Key,
        make: impl FnOnce(&mut Build, &State) -> Result<ImageRecord>,
    ) -> Result<()> {
        let key = key.finish();
        let hit = match self.opts.no_cache {
            true => None,
            false => self.cache.get(self.engine.images(), &key),
        };
        let rec = match hit {
            Some(id) => {
                self.event(Event::CacheHit);
                self.engine.images().find(&id.to_string())?.0
            }
            None => {
                let rec = make(self, st)?;
                self.cache.put(&key, &rec.id);
                rec
            }
        };
        st.cfg = Config::parse(&self.engine.images().config_bytes(&rec.id)?);
        let id = rec.id;
        st.rec = rec;
        self.event(Event::Done { image: &id });
        Ok(())
    }

    /// FROM: the state a stage starts from.
    fn from(&mut self, s: &Stage) -> Result<State> {
        self.announce(&s.from);
        let base = self.base_of(s);
        let images = self.engine.images();
        let rec = if let Some(i) = self.graph.lookup(&base, s.index) {
            self.built[&i].clone()
        } else if base == "scratch" {
            let raw = config::scratch();
            let empty = ImageRecord {
                id: Digest::of(&raw),
                diff_ids: vec![],
                manifest: None,
                layer_blobs: vec![],
                added: 0,
                last_tag: None,
            };
            config::record(images, &empty, &raw, None)?
        } else {
            images.find(&base)?.0
        };
        let cfg = Config::parse(&images.config_bytes(&rec.id)?);
        let id = rec.id;
        self.event(Event::Done { image: &id });
        Ok(State {
            rec,
            cfg,
            args: Vec::new(),
            cmd_set: false,
        })
    }

    /// Builds stage `i`; returns its image.
    fn stage(&mut self, i: usize) -> Result<ImageRecord> {
        let s = self.graph.stages[i].clone();
        let mut st = self.from(&s)?;
        // ONBUILD triggers of the base run first, then are cleared.
        if let Some(triggers) = st.cfg.list("OnBuild").filter(|t| !t.is_empty()) {
            let df = parse(&triggers.join("\n"))?;
            let mut key = Key::new(&st.rec.id);
            key.add("clear OnBuild");
            self.cached(&mut st, key, |b, st| {
                let mut cfg = st.cfg.clone();
                cfg.set("OnBuild", serde_json::Value::Null);
                cfg.step("/bin/sh -c #(nop) ONBUILD triggers", None, &b.created());
                config::record(b.engine.images(), &st.rec, &cfg.to_bytes(), None)
            })?;
            for ins in &df.instructions {
                self.instruction(&mut st, ins, i)?;
            }
        }
        for ins in &s.steps {
            self.announce(ins);
            self.instruction(&mut st, ins, i)?;
        }
        Ok(st.rec)
    }

    /// The image of `--from=NAME`: an earlier stage, else an image in the store.
    pub fn image_named(&self, name: &str, stage: usize) -> Result<ImageRecord> {
        match self.graph.lookup(name, stage) {
            Some(i) => Ok(self.built[&i].clone()),
            None => Ok(self.engine.images().find(name)?.0),
        }
    }
}

/// Builds; returns the final image's id (tagged as asked).
pub fn build(
    engine: &Engine,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Event),
) -> Result<Digest> {
    let df = parse(&opts.dockerfile)?;
    let graph = Graph::new(&df)?;
    let mut build_args = HashMap::new();
    for a in &opts.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            None => std::env::var(a)
                .ok()
                .and_then(|v| build_args.insert(a.clone(), v)),
        };
    }
    let mut b = Build {
        engine,
        opts,
        escape: df.escape,
        cache: Cache::new(engine.layout().root()),
        build_args,
        global: Vec::new(),
        built: HashMap::new(),
        graph,
        step: 0,
        total: 0,
        progress,
    };
    for ins in b.graph.global_args.clone() {
        for (k, v) in crate::steps::arg_decls(&ins, &|_| None, b.escape)? {
            let v = b.arg_value(&k, v, true);
            b.global.push((k, v));
        }
    }
    let target = b.graph.target(opts.target.as_deref())?;
    let needed = b.graph.needed(target, &|s| b.base_of(s));
    b.total = needed
        .iter()
        .map(|&i| 1 + b.graph.stages[i].steps.len())
        .sum();
    let mut last = None;
    for i in needed {
        let rec = b.stage(i)?;
        b.built.insert(i, rec.clone());
        last = Some(rec);
    }
    let mut rec = last.expect("at least one stage");
    if !opts.labels.is_empty() {
        let mut cfg = Config::parse(&engine.images().config_bytes(&rec.id)?);
        for (k, v) in &opts.labels {
            cfg.insert_in("Labels", k, serde_json::json!(v));
        }
        rec = config::record(engine.images(), &rec, &cfg.to_bytes(), None)?;
    }
    if !opts.tags.is_empty() {
        rec = engine.images().add(rec, &opts.tags, &[])?;
    }
    Ok(rec.id)
}

/// The Dockerfile path `-f` names, relative to the context unless absolute.
pub fn dockerfile_path(context: &std::path::Path, f: Option<&str>) -> PathBuf {
    match f {
        Some(f) if f.starts_with('/') => PathBuf::from(f),
        Some(f) => std::env::current_dir().unwrap_or_default().join(f),
        None => context.join("Dockerfile"),
    }
}

/// RUN's text: the args form as docker records it in history.
pub fn args_text(args: &Args) -> String {
    match args {
        Args::Json(v) => serde_json::to_string(v).unwrap_or_default(),
        Args::Text(t) => t.clone(),
    }
}

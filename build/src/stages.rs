//! The stage graph: global ARGs (before the first FROM), one stage per FROM with its name and
//! instructions, and the stages a target needs (FROM an earlier stage, `COPY --from`,
//! `RUN --mount=from=`), in build order.

use crate::parser::{Args, Dockerfile, Instruction};
use crate::{Error, Result};

/// One stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The FROM instruction.
    pub from: Instruction,
    /// The base as written (variables not yet expanded).
    pub base: String,
    /// The instructions after FROM.
    pub steps: Vec<Instruction>,
}

/// The Dockerfile cut into stages.
#[derive(Debug, Clone)]
pub struct Graph {
    /// ARG instructions before the first FROM.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

impl Graph {
    /// Cuts `df` into stages.
    pub fn new(df: &Dockerfile) -> Result<Graph> {
        let mut global_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for ins in &df.instructions {
            if ins.keyword == "FROM" {
                let Args::Text(t) = &ins.args else {
                    return Err(Error::at(ins.line, "FROM requires an image"));
                };
                let w: Vec<&str> = t.split_whitespace().collect();
                let (base, name) = match w.as_slice() {
                    [b] => (*b, None),
                    [b, kw, n] if kw.eq_ignore_ascii_case("as") => {
                        (*b, Some(n.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(Error::at(
                            ins.line,
                            "FROM requires either one or three arguments",
                        ));
                    }
                };
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    from: ins.clone(),
                    base: base.to_string(),
                    steps: Vec::new(),
                });
            } else if let Some(s) = stages.last_mut() {
                s.steps.push(ins.clone());
            } else if ins.keyword == "ARG" {
                global_args.push(ins.clone());
            } else {
                return Err(Error::at(
                    ins.line,
                    "no build stage in current context (the first instruction must be FROM or ARG)",
                ));
            }
        }
        if stages.is_empty() {
            return Err(Error::at(1, "file with no instructions"));
        }
        Ok(Graph {
            global_args,
            stages,
        })
    }

    /// The stage a name or index refers to, if it is one (only stages before `before`).
    pub fn lookup(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(s) = self.stages[..before]
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(s.index);
        }
        name.parse::<usize>().ok().filter(|&i| i < before)
    }

    /// The target stage: `--target` by name, else the last.
    pub fn target(&self, target: Option<&str>) -> Result<usize> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self
                .lookup(t, self.stages.len())
                .ok_or_else(|| Error::NoTarget(t.to_string())),
        }
    }

    /// The stages `target` depends on, in build order, `target` last. `base_of` gives a
    /// stage's expanded base name (FROM may use global ARGs).
    pub fn needed(&self, target: usize, base_of: &dyn Fn(&Stage) -> String) -> Vec<usize> {
        let mut need = vec![false; self.stages.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut need[i], true) {
                continue;
            }
            let s = &self.stages[i];
            todo.extend(self.lookup(&base_of(s), i));
            for ins in &s.steps {
                for from in deps_of(ins) {
                    todo.extend(self.lookup(&from, i));
                }
            }
        }
        (0..self.stages.len()).filter(|&i| need[i]).collect()
    }
}

/// The stage names an instruction refers to.
fn deps_of(ins: &Instruction) -> Vec<String> {
    let mut out: Vec<String> = ins.flag_all("from").iter().map(|s| s.to_string()).collect();
    for m in ins.flag_all("mount") {
        out.extend(
            m.split(',')
                .filter_map(|kv| kv.strip_prefix("from="))
                .map(str::to_string),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    #[test]
    fn stages_and_target_dependencies() {
        let df = parse(
            "ARG BASE=busybox\nFROM $BASE AS one\nRUN a\nFROM busybox AS Two\nRUN b\n\
             FROM one\nCOPY --from=two /x /y\nFROM scratch AS unused\n",
        )
        .unwrap();
        let g = Graph::new(&df).unwrap();
        assert_eq!(g.global_args.len(), 1);
        assert_eq!(g.stages.len(), 4);
        assert_eq!(g.stages[1].name.as_deref(), Some("two"));
        let base = |s: &Stage| s.base.clone();
        assert_eq!(g.needed(g.target(Some("2")).unwrap(), &base), [0, 1, 2]);
        assert_eq!(g.needed(g.target(None).unwrap(), &base), [3]);
        assert_eq!(g.needed(g.target(Some("TWO")).unwrap(), &base), [1]);
        assert!(g.target(Some("nope")).is_err());
        assert!(Graph::new(&parse("RUN x\n").unwrap()).is_err());
    }
}

//! A resolved [`Filter`] → a libseccomp filter loaded into the calling thread. Called in the
//! container's child just before it gives up its capabilities (the filter is loaded without
//! setting no_new_privs, so it needs CAP_SYS_ADMIN then, as runc does it).

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use super::{Action, Arg, Filter, SeccompError};

fn action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Trace(e) => ScmpAction::Trace(e as u16),
        Action::Log => ScmpAction::Log,
    }
}

fn compare(a: &Arg) -> ScmpArgCompare {
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(a.value),
        _ => ScmpCompareOp::Equal,
    };
    let datum = match op {
        ScmpCompareOp::MaskedEqual(_) => a.value_two,
        _ => a.value,
    };
    ScmpArgCompare::new(a.index, op, datum)
}

/// Builds the libseccomp filter (not loaded).
pub(super) fn build(f: &Filter) -> Result<ScmpFilterContext, SeccompError> {
    let mut ctx = ScmpFilterContext::new(action(f.default)).map_err(SeccompError::Load)?;
    ctx.set_ctl_nnp(false).map_err(SeccompError::Load)?;
    for a in &f.arches {
        let arch: ScmpArch = a
            .parse()
            .map_err(|_| SeccompError::UnknownArch(a.clone()))?;
        if !ctx.is_arch_present(arch).unwrap_or(false) {
            ctx.add_arch(arch).map_err(SeccompError::Load)?;
        }
    }
    for r in &f.rules {
        if r.action == f.default {
            continue;
        }
        let act = action(r.action);
        let cmps: Vec<ScmpArgCompare> = r.args.iter().map(compare).collect();
        // libseccomp ANDs the comparisons of one rule but refuses two on the same argument:
        // those become one rule each (as runc does).
        let mut indexes: Vec<u32> = r.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let one_rule = indexes.len() == r.args.len();
        for name in &r.names {
            // A name this architecture does not have is skipped (docker's profile lists the
            // calls of every architecture).
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if cmps.is_empty() {
                ctx.add_rule(act, sc).map(|_| ())
            } else if one_rule {
                ctx.add_rule_conditional(act, sc, &cmps).map(|_| ())
            } else {
                cmps.iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(|_| ()))
            };
            added.map_err(|source| SeccompError::Rule {
                name: name.clone(),
                source,
            })?;
        }
    }
    Ok(ctx)
}

/// Loads the filter into the calling thread (inherited by its children and across exec).
pub fn load(f: &Filter) -> Result<(), SeccompError> {
    build(f)?.load().map_err(SeccompError::Load)
}

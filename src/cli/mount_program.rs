//! The fuse-overlayfs command line, for containers/storage's `mount_program` (podman, buildah,
//! CRI-O) and scripts written for fuse-overlayfs:
//! `cairn [-f] [-d] -o lowerdir=...,upperdir=...,workdir=... [SOURCE] MOUNTPOINT`.
//! It is recognised when the first argument is an option of that form (`-o`, `-f`, `-d`), or
//! when the binary runs under a name ending in `overlayfs` (a link named `fuse-overlayfs` or
//! `cairn-overlayfs`); it is translated into `cairn mount -o ... MOUNTPOINT`, whose option
//! parser knows every fuse-overlayfs option (relative lower dirs resolve against the current
//! directory, as containers/storage relies on).

use std::ffi::OsString;

/// What the fuse-overlayfs form asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Run `cairn` with these arguments instead.
    Args(Vec<OsString>),
    /// Print this and exit 0 (`-h`, `-V`).
    Print(String),
    /// A usage error (exit 1, as fuse-overlayfs).
    Usage(String),
}

const USAGE: &str =
    "usage: cairn [-f] [-d] -o lowerdir=A:B[,upperdir=U,workdir=W,OPTIONS] MOUNTPOINT
(the fuse-overlayfs command line; see `cairn mount --help` for the options)";

/// True when `args` (argv, program name first) use the fuse-overlayfs form.
pub fn is_fuse_overlayfs_form(args: &[OsString]) -> bool {
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv0.ends_with("overlayfs") {
        return true;
    }
    let first = args.get(1).map(|a| a.to_string_lossy().into_owned());
    matches!(first.as_deref(), Some(f) if f.starts_with("-o") || f == "-f" || f == "-d")
}

/// Translates a fuse-overlayfs command line into `cairn mount` arguments.
pub fn translate(args: &[OsString]) -> Invocation {
    let mut out: Vec<OsString> = vec!["cairn".into(), "mount".into()];
    let mut positional = Vec::new();
    let mut foreground = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        let opts = match s.as_ref() {
            "-o" => match it.next() {
                Some(o) => Some(o.clone()),
                None => return Invocation::Usage(format!("missing argument for -o\n{USAGE}")),
            },
            o if o.starts_with("-o") => Some(OsString::from(&o[2..])),
            "-f" => {
                foreground = true;
                None
            }
            "-d" | "--debug" => {
                foreground = true;
                None
            }
            "-h" | "--help" => return Invocation::Print(USAGE.into()),
            "-V" | "--version" => {
                return Invocation::Print(format!(
                    "cairn version {} (fuse-overlayfs command line)",
                    env!("CARGO_PKG_VERSION")
                ));
            }
            o if o.starts_with('-') && o.len() > 1 => {
                return Invocation::Usage(format!("unknown argument '{o}'\n{USAGE}"));
            }
            _ => {
                positional.push(a.clone());
                None
            }
        };
        if let Some(o) = opts {
            if o.to_string_lossy().split(',').any(|x| x == "debug") {
                foreground = true;
            }
            out.push("-o".into());
            out.push(o);
        }
    }
    if positional.is_empty() || positional.len() > 2 {
        return Invocation::Usage(format!("expected [SOURCE] MOUNTPOINT\n{USAGE}"));
    }
    // A store fuse-overlayfs wrote may hold its private forms in the upper.
    out.push("-o".into());
    out.push("fuse_overlayfs_upper".into());
    if foreground {
        out.push("--foreground".into());
    }
    // Keep paths that start with '-' from being read as flags.
    out.push("--".into());
    out.extend(positional);
    Invocation::Args(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn containers_storage_command_line_becomes_cairn_mount() {
        let a = args(&[
            "/usr/bin/cairn",
            "-o",
            "lowerdir=l/A,upperdir=/d,workdir=/w,,volatile",
            "/m",
        ]);
        assert!(is_fuse_overlayfs_form(&a));
        let want = args(&[
            "cairn",
            "mount",
            "-o",
            "lowerdir=l/A,upperdir=/d,workdir=/w,,volatile",
            "-o",
            "fuse_overlayfs_upper",
            "--",
            "/m",
        ]);
        assert_eq!(translate(&a), Invocation::Args(want));
    }

    #[test]
    fn program_name_and_flags_select_the_form() {
        assert!(is_fuse_overlayfs_form(&args(&[
            "/usr/local/bin/fuse-overlayfs",
            "/m"
        ])));
        assert!(is_fuse_overlayfs_form(&args(&["cairn-overlayfs", "-h"])));
        assert!(!is_fuse_overlayfs_form(&args(&[
            "cairn", "mount", "-o", "x", "/m"
        ])));
        assert!(!is_fuse_overlayfs_form(&args(&["cairn", "images"])));
        let t = translate(&args(&[
            "fuse-overlayfs",
            "-f",
            "-olowerdir=/a,debug",
            "src",
            "/m",
        ]));
        let want = args(&[
            "cairn",
            "mount",
            "-o",
            "lowerdir=/a,debug",
            "-o",
            "fuse_overlayfs_upper",
            "--foreground",
            "--",
            "src",
            "/m",
        ]);
        assert_eq!(t, Invocation::Args(want));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for a in [
            &["cairn", "-o"][..],
            &["cairn", "-o", "lowerdir=/a"],
            &["cairn", "-o", "lowerdir=/a", "-x", "/m"],
            &["cairn", "-o", "lowerdir=/a", "a", "b", "c"],
        ] {
            assert!(matches!(translate(&args(a)), Invocation::Usage(_)), "{a:?}");
        }
        assert!(matches!(
            translate(&args(&["fuse-overlayfs", "-V"])),
            Invocation::Print(_)
        ));
    }
}

//! Shared by the root/FUSE end-to-end tests: skip (with the reason printed) where a test cannot
//! run, but fail in CI, where it always must.

/// True when `why` is None; otherwise prints "skipping: WHY" and returns false, or panics when
/// `CI=true`.
pub fn ready_unless(why: Option<&str>) -> bool {
    match why {
        None => true,
        Some(w) if std::env::var("CI").as_deref() == Ok("true") => panic!("cannot run in CI: {w}"),
        Some(w) => {
            eprintln!("skipping: {w}");
            false
        }
    }
}

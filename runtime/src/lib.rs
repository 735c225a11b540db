//! cairn-runtime: running processes on a mounted rootfs (issue 5). Only the crate boundary
//! exists so far; the runtime itself is not implemented yet.

//! `cairn run`: a container created by [`crate::launch::create`] handed to a supervisor
//! ([`crate::supervisor`]) — this process in the foreground ([`run`]), a detached one with
//! `-d` ([`run_detached`]).

use crate::Result;
use crate::container::Container;
use crate::launch::{Launch, NewContainer};
use crate::supervisor::Attach;

pub use crate::launch::{RunRequest, create};

/// Runs a container to completion in the foreground (this process is its supervisor, its
/// output goes to this process's stdout and stderr and to its log); returns the exit status
/// of its pid 1 (128+N for signal N). Errors carry docker's status in [`Error::exit_code`].
pub fn run(new: NewContainer) -> Result<i32> {
    let attach = match new.req.interactive {
        true => Attach::OutputAndStdin,
        false => Attach::Output,
    };
    crate::supervisor::supervise(Launch::New(Box::new(new)), attach, &mut |_| {})
}

/// `run -d`: creates the container and starts it under a detached supervisor; returns once
/// pid 1 runs (or could not be started).
pub fn run_detached(new: NewContainer) -> Result<Container> {
    let c = new.container.clone();
    crate::supervisor::detach(Launch::New(Box::new(new)))?;
    Ok(c)
}

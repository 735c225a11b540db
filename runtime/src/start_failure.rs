//! How the child side of a start reports a failure before exec to its parent: docker's exit
//! status (125 setup, 126 not executable, 127 not found) and a message. Shared by the rootfs
//! setup and the process start, which is why it is neither.

/// Why the child could not exec its command, with docker's exit status for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub code: i32,
    pub message: String,
}

impl StartFailure {
    /// A failure of cairn's own setup (exit status 125).
    pub fn setup(message: String) -> StartFailure {
        StartFailure { code: 125, message }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        format!("{}\n{}", self.code, self.message).into_bytes()
    }

    pub(crate) fn decode(b: &[u8]) -> StartFailure {
        let s = String::from_utf8_lossy(b);
        let (code, msg) = s.split_once('\n').unwrap_or(("125", &s));
        StartFailure {
            code: code.parse().unwrap_or(125),
            message: msg.to_string(),
        }
    }
}

//! A blob download as one `Read` that survives broken connections: when the body ends early or
//! fails, it waits (1 s, 2 s, 4 s …) and asks again with `Range: bytes=<offset>-`, so the
//! bytes continue the same stream (and the same hashing and decompression above it). A
//! registry that ignores `Range` (200 instead of 206) is read past the bytes already had.

use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{Method, StatusCode};

use super::client::{Body, Client};
use super::error::RegistryError;
use super::{BlobEvent, Progress};
use crate::digest::Digest;

/// Attempts after a failure before the transfer is given up.
pub const MAX_RETRIES: u32 = 4;

/// A blob being read from a registry.
pub struct BlobReader<'a> {
    client: &'a Client,
    url: String,
    scopes: &'a [String],
    digest: Digest,
    size: u64,
    offset: u64,
    failures: u32,
    body: Option<ureq::BodyReader<'static>>,
    progress: &'a dyn Progress,
    /// The error that ended the transfer, for the caller (the `io::Error` only carries text).
    error: &'a Mutex<Option<RegistryError>>,
    backoff: Duration,
}

impl<'a> BlobReader<'a> {
    /// A reader of blob `digest` (`size` bytes as the manifest says) of repository `repo`.
    /// Nothing is requested until the first read. A fatal error is also left in `error`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: &'a Client,
        repo: &str,
        scopes: &'a [String],
        digest: Digest,
        size: u64,
        progress: &'a dyn Progress,
        error: &'a Mutex<Option<RegistryError>>,
    ) -> BlobReader<'a> {
        BlobReader {
            client,
            url: client.url(&format!("{repo}/blobs/{digest}")),
            scopes,
            digest,
            size,
            offset: 0,
            failures: 0,
            body: None,
            progress,
            error,
            backoff: Duration::from_secs(1),
        }
    }

    /// Sets the first pause between attempts (tests use a short one).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    fn open(&mut self) -> Result<(), RegistryError> {
        let range = format!("bytes={}-", self.offset);
        let headers: Vec<(&str, &str)> = if self.offset > 0 {
            vec![("Range", range.as_str())]
        } else {
            vec![]
        };
        let resp = self
            .client
            .send(Method::GET, &self.url, self.scopes, &headers, Body::Empty)?;
        let status = resp.status();
        let skip = match status {
            StatusCode::PARTIAL_CONTENT if self.offset > 0 => {
                let start = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(range_start);
                if start.is_some_and(|s| s != self.offset) {
                    return Err(self.client.bad(
                        &format!("GET blob {}", self.digest),
                        format!("asked for bytes from {}, got {start:?}", self.offset),
                    ));
                }
                0
            }
            StatusCode::OK => self.offset,
            _ => {
                return Err(self
                    .client
                    .status_error(resp, &format!("GET blob {}", self.digest)));
            }
        };
        let mut body = resp.into_body().into_reader();
        if skip > 0 {
            let copied = io::copy(&mut (&mut body).take(skip), &mut io::sink());
            if !matches!(copied, Ok(n) if n == skip) {
                return Err(self.transfer(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed while skipping to the resume offset",
                )));
            }
        }
        self.body = Some(body);
        Ok(())
    }

    fn transfer(&self, source: io::Error) -> RegistryError {
        RegistryError::Transfer {
            registry: self.client.registry().to_string(),
            what: format!("blob {}", self.digest),
            source,
        }
    }

    /// Records a fatal error and turns it into the `io::Error` the reader returns.
    fn fail(&self, e: RegistryError) -> io::Error {
        let err = io::Error::other(e.to_string());
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        err
    }

    /// After a failure: waits and lets the loop try again, or gives up.
    fn retry(&mut self, e: RegistryError) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if self.failures > MAX_RETRIES {
            return Err(self.fail(e));
        }
        self.progress.blob(
            &self.digest,
            BlobEvent::Retrying {
                attempt: self.failures,
                offset: self.offset,
            },
        );
        std::thread::sleep(self.backoff * (1 << (self.failures - 1).min(4)));
        Ok(())
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL`.
fn range_start(v: &str) -> Option<u64> {
    v.trim()
        .strip_prefix("bytes")?
        .trim()
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// True for failures worth another attempt: connection trouble, 5xx, 429.
pub(crate) fn retryable(e: &RegistryError) -> bool {
    match e {
        RegistryError::Unreachable { .. } | RegistryError::Transfer { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.offset >= self.size {
                return Ok(0);
            }
            if self.body.is_none() {
                match self.open() {
                    Ok(()) => {}
                    Err(e) if retryable(&e) => {
                        self.retry(e)?;
                        continue;
                    }
                    Err(e) => return Err(self.fail(e)),
                }
            }
            let want = buf.len().min((self.size - self.offset) as usize);
            let body = self.body.as_mut().expect("opened above");
            match body.read(&mut buf[..want]) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed early");
                    let e = self.transfer(e);
                    self.retry(e)?;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.failures = 0;
                    let (done, total) = (self.offset, self.size);
                    self.progress
                        .blob(&self.digest, BlobEvent::Progress { done, total });
                    if done == total {
                        self.body = None;
                        self.progress.blob(&self.digest, BlobEvent::Downloaded);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let e = self.transfer(e);
                    self.retry(e)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ClientOptions, NoProgress};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Serves `data` to successive GETs: the first connection is cut after `cut` bytes, later
    /// ones honour `Range` when `ranges` is set (206) or send everything again (200). Returns
    /// the port and the Range headers seen.
    fn server(data: Vec<u8>, cut: usize, ranges: bool) -> (u16, std::sync::mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (i, conn) in l.incoming().take(2).enumerate() {
                let mut s = conn.unwrap();
                let mut range = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = v.trim().trim_end_matches('-').to_string();
                    }
                }
                tx.send(range.clone()).unwrap();
                let from: usize = if ranges {
                    range.parse().unwrap_or(0)
                } else {
                    0
                };
                let body = &data[from..];
                let status = if from > 0 {
                    "206 Partial Content"
                } else {
                    "200 OK"
                };
                let range_hdr = if from > 0 {
                    format!(
                        "Content-Range: bytes {from}-{}/{}\r\n",
                        data.len() - 1,
                        data.len()
                    )
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{range_hdr}Connection: close\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                let n = if i == 0 { cut } else { body.len() };
                let _ = s.write_all(&body[..n]);
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        });
        (port, rx)
    }

    fn fetch(port: u16, data: &[u8]) -> Vec<u8> {
        let client = Client::new(&format!("127.0.0.1:{port}"), &ClientOptions::default()).unwrap();
        let err = Mutex::new(None);
        let scopes = vec![];
        let digest = Digest::of(data);
        let mut r = BlobReader::new(
            &client,
            "a/b",
            &scopes,
            digest,
            data.len() as u64,
            &NoProgress,
            &err,
        )
        .with_backoff(Duration::from_millis(5));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn content_range_start() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes 0-0/*"), Some(0));
        assert_eq!(range_start("items 1-2/3"), None);
    }

    #[test]
    fn resumes_with_range_after_a_cut() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (port, seen) = server(data.clone(), 100_000, true);
        assert_eq!(fetch(port, &data), data);
        assert_eq!(seen.recv().unwrap(), "");
        assert_eq!(seen.recv().unwrap(), "100000");
    }

    #[test]
    fn resumes_when_range_is_ignored() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
        let (port, seen) = server(data.clone(), 50_000, false);
        assert_eq!(fetch(port, &data), data);
        assert_eq!(seen.recv().unwrap(), "");
        assert_eq!(seen.recv().unwrap(), "50000");
    }
}

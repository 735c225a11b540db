//! A tiny HTTP/1.1 reverse proxy for the registry tests, std::net and one thread per
//! connection: every request is read whole, handed to a [`Handler`] that either answers it
//! itself or forwards it to the upstream (the real registry) and returns the response, possibly
//! changed. Every answer carries `Connection: close`, so one request is served per connection,
//! and a response may be cut off after some bytes of its body ([`Resp::cut_after`]) or stall
//! ([`Resp::hold`]).
//! Every request the proxy saw is logged ([`Proxy::requests`]).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Path with query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// `GET` or `HEAD` of a blob: the digest.
    pub fn blob(&self) -> Option<&str> {
        let (_, digest) = self.path.split_once("/blobs/")?;
        (self.method == "GET" || self.method == "HEAD").then_some(digest)
    }

    /// `GET` or `HEAD` of a manifest.
    pub fn is_manifest(&self) -> bool {
        self.path.contains("/manifests/") && (self.method == "GET" || self.method == "HEAD")
    }
}

/// A response to send back.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the headers (with the full Content-Length) and only this many body bytes, then
    /// close the connection.
    pub cut_after: Option<usize>,
    /// Wait this long after the (possibly cut) body before closing: a stalled transfer.
    pub hold: Duration,
}

impl Resp {
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            headers: (headers.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            cut_after: None,
            hold: Duration::ZERO,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The connection is closed without any answer.
    pub fn hang_up() -> Resp {
        Resp::new(0, &[], "")
    }

    /// Replaces (or adds) header `name`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    (headers.iter())
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Where requests go when forwarded.
#[derive(Clone, Copy, Debug)]
pub struct Upstream {
    pub port: u16,
}

impl Upstream {
    /// Sends `req` to 127.0.0.1:port (Host kept, so URLs the registry makes point back at
    /// the proxy) and reads the whole response.
    pub fn send(&self, req: &Req) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect upstream");
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
        for (k, v) in &req.headers {
            let skip = [
                "connection",
                "content-length",
                "transfer-encoding",
                "expect",
            ];
            if !skip.iter().any(|h| k.eq_ignore_ascii_case(h)) {
                head += &format!("{k}: {v}\r\n");
            }
        }
        head += &format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            req.body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&req.body).unwrap();
        let mut r = BufReader::new(s);
        let (status_line, headers) = read_head(&mut r).expect("upstream response");
        let status: u16 = (status_line.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let body = read_body(&mut r, &headers, req.method == "HEAD");
        let headers = (headers.into_iter())
            .filter(|(k, _)| {
                !["connection", "transfer-encoding"]
                    .iter()
                    .any(|h| k.eq_ignore_ascii_case(h))
            })
            .collect();
        Resp {
            status,
            headers,
            body,
            cut_after: None,
            hold: Duration::ZERO,
        }
    }
}

/// Reads a request or status line and the headers; None at EOF.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some((first.trim_end().to_string(), headers))
}

/// A body by Content-Length, chunked, or (a response) until EOF.
fn read_body(r: &mut impl BufRead, headers: &[(String, String)], head_only: bool) -> Vec<u8> {
    let mut body = Vec::new();
    if head_only {
        return body;
    }
    if find(headers, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = find(headers, "content-length") {
        body.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut body).unwrap();
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    body
}

pub type Handler = dyn Fn(&Req, &Upstream) -> Resp + Send + Sync;

/// A running proxy on 127.0.0.1; stops accepting when dropped.
pub struct Proxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` that calls `handler` for every request.
    pub fn start(
        upstream: u16,
        handler: impl Fn(&Req, &Upstream) -> Resp + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (log, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let handler: Arc<Handler> = Arc::new(handler);
        let up = Upstream { port: upstream };
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, log) = (handler.clone(), log2.clone());
                std::thread::spawn(move || serve(conn, &*handler, up, &log));
            }
        });
        Proxy { port, log, stop }
    }

    /// A proxy that forwards everything unchanged.
    pub fn forward(upstream: u16) -> Proxy {
        Proxy::start(upstream, |req, up| up.send(req))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, handler: &Handler, up: Upstream, log: &Mutex<Vec<Req>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let Some((line, headers)) = read_head(&mut r) else {
        return;
    };
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let chunked = find(&headers, "transfer-encoding").is_some_and(|t| t.contains("chunked"));
    let no_body = find(&headers, "content-length").is_none() && !chunked;
    let body = read_body(&mut r, &headers, no_body);
    let req = Req {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
    };
    log.lock().unwrap().push(req.clone());
    let resp = handler(&req, &up);
    let _ = write_resp(conn, &resp, req.method == "HEAD");
}

fn write_resp(mut conn: TcpStream, resp: &Resp, head_only: bool) -> std::io::Result<()> {
    if resp.status == 0 {
        return conn.shutdown(std::net::Shutdown::Both); // no answer at all
    }
    let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
    let mut has_length = false;
    for (k, v) in &resp.headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        head += &format!("{k}: {v}\r\n");
    }
    if !has_length {
        head += &format!("Content-Length: {}\r\n", resp.body.len());
    }
    head += "Connection: close\r\n\r\n";
    conn.write_all(head.as_bytes())?;
    if !head_only {
        let n = resp
            .cut_after
            .unwrap_or(resp.body.len())
            .min(resp.body.len());
        conn.write_all(&resp.body[..n])?;
    }
    conn.flush()?;
    std::thread::sleep(resp.hold);
    conn.shutdown(std::net::Shutdown::Both)
}

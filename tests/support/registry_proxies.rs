//! The misbehaving fronts of the registry tests, each an [`http_proxy::Proxy`] in front of a
//! real registry: a Bearer token server with short-lived tokens, a connection cut mid-blob, a
//! stalled blob, a corrupted blob, a redirect of blobs to another port, and manifests replaced by garbage or
//! by a schema 1 manifest.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http_proxy::{Proxy, Req, Resp};

pub fn base64(input: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Writes a docker-config credentials file (mode 0600) for `registry`.
pub fn write_auth_file(path: &std::path::Path, registry: &str, user: &str, password: &str) {
    use std::os::unix::fs::PermissionsExt;
    let auth = base64(format!("{user}:{password}").as_bytes());
    let json = serde_json::json!({"auths": {registry: {"auth": auth}}});
    std::fs::write(path, json.to_string()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The repository a `/v2/NAME/{manifests,blobs,tags}/…` path is about.
fn repository(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .find_map(|k| rest.find(k).map(|i| &rest[..i]))
}

fn unauthorized(challenge: String) -> Resp {
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    let ct = ("Content-Type", "application/json");
    Resp::new(401, &[("WWW-Authenticate", &challenge), ct], body)
}

/// Percent-decoding of a query value (`%3A` → `:`, `+` → space).
fn unescape(v: &str) -> String {
    let mut out = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `scope=` values of a token request's query.
fn scopes(path: &str) -> Vec<String> {
    let query = path.split_once('?').map_or("", |q| q.1);
    (query.split('&'))
        .filter_map(|kv| kv.strip_prefix("scope="))
        .flat_map(|v| {
            unescape(v)
                .split(' ')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What a request needs: (repository, action), none for `/v2/` itself.
fn needs(req: &Req) -> Option<(String, &'static str)> {
    let action = match req.method.as_str() {
        "GET" | "HEAD" => "pull",
        _ => "push",
    };
    repository(&req.path).map(|r| (r.to_string(), action))
}

/// Whether `granted` scopes (`repository:NAME:pull,push`) allow `action` on `repo`.
fn allows(granted: &[String], repo: &str, action: &str) -> bool {
    granted.iter().any(|s| {
        let mut p = s.splitn(3, ':');
        let (kind, name, actions) = (p.next(), p.next(), p.next().unwrap_or(""));
        kind == Some("repository") && name == Some(repo) && actions.split(',').any(|a| a == action)
    })
}

/// One issued token: requests left and the scopes granted (all that were asked for).
struct Token {
    left: usize,
    scopes: Vec<String>,
}

/// A token server (`/token` on the proxy's own port) plus a proxy that wants
/// `Authorization: Bearer TOKEN` whose scopes cover the request (`repository:NAME:pull` for
/// GET/HEAD, `:push` for the rest, as the challenge says). The token server wants Basic
/// `user:password` (`creds`) or hands out anonymous tokens (None, as Docker Hub does for public
/// images), and a token is good for `uses` requests only (it says `expires_in: 60`, but runs
/// out sooner: a client must fetch a new one when a request with the old one gets 401).
pub struct BearerFront {
    pub proxy: Proxy,
    /// Tokens issued (one per successful `/token` request).
    pub issued: Arc<AtomicUsize>,
    /// `/token` requests refused for bad credentials.
    pub refused: Arc<AtomicUsize>,
    /// Every scope asked of the token server.
    pub asked: Arc<Mutex<BTreeSet<String>>>,
}

impl BearerFront {
    pub fn start(upstream: u16, creds: Option<(&str, &str)>, uses: usize) -> BearerFront {
        let (issued, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let asked: Arc<Mutex<BTreeSet<String>>> = Default::default();
        let tokens: Mutex<BTreeMap<String, Token>> = Default::default();
        let want = creds.map(|(u, p)| basic(u, p));
        let (i2, r2, a2) = (issued.clone(), refused.clone(), asked.clone());
        let proxy = Proxy::start(upstream, move |req, up| {
            let host = req.header("Host").unwrap_or("127.0.0.1").to_string();
            if req.path.starts_with("/token") {
                let auth = req.header("Authorization");
                if want.as_deref().is_some_and(|w| auth != Some(w)) {
                    r2.fetch_add(1, Ordering::SeqCst);
                    return unauthorized(format!("Basic realm=\"http://{host}/token\""));
                }
                let n = i2.fetch_add(1, Ordering::SeqCst);
                let token = format!("opaque-token-{n}");
                let scopes = scopes(&req.path);
                a2.lock().unwrap().extend(scopes.iter().cloned());
                let t = Token { left: uses, scopes };
                tokens.lock().unwrap().insert(token.clone(), t);
                let body = serde_json::json!({"token": token, "access_token": token,
                    "expires_in": 60, "issued_at": "2026-01-01T00:00:00Z"});
                let ct = ("Content-Type", "application/json");
                return Resp::new(200, &[ct], body.to_string());
            }
            let need = needs(req);
            let presented = (req.header("Authorization"))
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::to_string);
            let valid = presented.is_some_and(|t| {
                let mut tokens = tokens.lock().unwrap();
                match tokens.get_mut(&t) {
                    Some(t) if t.left > 0 => {
                        t.left -= 1;
                        need.as_ref().is_none_or(|(r, a)| allows(&t.scopes, r, a))
                    }
                    _ => false,
                }
            });
            if valid {
                return up.send(req);
            }
            let scope = need
                .map(|(r, a)| {
                    let actions = if a == "push" { "pull,push" } else { "pull" };
                    format!(",scope=\"repository:{r}:{actions}\"")
                })
                .unwrap_or_default();
            unauthorized(format!(
                "Bearer realm=\"http://{host}/token\",service=\"test\"{scope}"
            ))
        });
        BearerFront {
            proxy,
            issued,
            refused,
            asked,
        }
    }
}

/// Cuts the connection after `after` body bytes of the first full GET of every blob bigger
/// than `after` (the client must resume with `Range`).
pub fn cutting(upstream: u16, after: usize) -> Proxy {
    let cut: Mutex<BTreeSet<String>> = Default::default();
    Proxy::start(upstream, move |req, up| {
        let mut resp = up.send(req);
        let first = req.method == "GET"
            && req.header("Range").is_none()
            && resp.status == 200
            && resp.body.len() > after
            && req
                .blob()
                .is_some_and(|d| cut.lock().unwrap().insert(d.to_string()));
        if first {
            resp.cut_after = Some(after);
        }
        resp
    })
}

/// Sends half of every blob bigger than 4 KiB, then stalls for a minute.
pub fn stalling(upstream: u16) -> Proxy {
    Proxy::start(upstream, move |req, up| {
        let mut resp = up.send(req);
        if req.method == "GET" && req.blob().is_some() && resp.body.len() > 4096 {
            resp.cut_after = Some(resp.body.len() / 2);
            resp.hold = std::time::Duration::from_secs(60);
        }
        resp
    })
}

/// Hangs up on the first request with `method` to a path containing `part` (unanswered, not
/// forwarded); forwards everything else.
pub fn hanging_up_once(upstream: u16, method: &'static str, part: &'static str) -> Proxy {
    let done = AtomicUsize::new(0);
    Proxy::start(upstream, move |req, up| {
        let hit = req.method == method && req.path.contains(part);
        if hit && done.fetch_add(1, Ordering::SeqCst) == 0 {
            return Resp::hang_up();
        }
        up.send(req)
    })
}

/// Replaces the first occurrence of `needle` in any blob body by `replacement` (same length).
pub fn corrupting(upstream: u16, needle: &'static [u8], replacement: &'static [u8]) -> Proxy {
    assert_eq!(needle.len(), replacement.len());
    Proxy::start(upstream, move |req, up| {
        let mut resp = up.send(req);
        if req.blob().is_some()
            && let Some(i) = resp.body.windows(needle.len()).position(|w| w == needle)
        {
            resp.body[i..i + needle.len()].copy_from_slice(replacement);
        }
        resp
    })
}

/// Answers every blob GET with `307` to the same path on `to` (another port).
pub fn redirecting_blobs(upstream: u16, to: u16) -> Proxy {
    Proxy::start(upstream, move |req, up| {
        if req.blob().is_some() && req.method == "GET" {
            let location = format!("http://127.0.0.1:{to}{}", req.path);
            return Resp::new(307, &[("Location", &location)], "");
        }
        up.send(req)
    })
}

/// A blob host that forwards with its own `Authorization` (as a presigned URL would let a
/// request through), recording what the client sent in [`Proxy::requests`].
pub fn blob_host(upstream: u16, authorization: String) -> Proxy {
    Proxy::start(upstream, move |req, up| {
        let mut req: Req = req.clone();
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        req.headers
            .push(("Authorization".into(), authorization.clone()));
        up.send(&req)
    })
}

/// Serves `body` with `media_type` for every manifest request; the rest is forwarded.
pub fn fake_manifests(upstream: u16, media_type: &'static str, body: &'static str) -> Proxy {
    Proxy::start(upstream, move |req: &Req, up| {
        if !req.is_manifest() {
            return up.send(req);
        }
        let digest = format!("sha256:{}", crate::tree::sha256_hex(body.as_bytes()));
        let headers = [
            ("Content-Type", media_type),
            ("Docker-Content-Digest", digest.as_str()),
        ];
        Resp::new(200, &headers, body)
    })
}

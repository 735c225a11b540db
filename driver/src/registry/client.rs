//! One registry's HTTP client: scheme, auth and redirects.
//!
//! Plain HTTP is used for loopback registries; for those marked insecure (`--tls-verify=false`
//! or the settings file, see [`super::credentials`]) HTTPS without certificate verification
//! when they speak it, else plain HTTP; verified HTTPS otherwise. Auth is learnt from
//! the first `401`: `Basic` sends the stored credentials, `Bearer` fetches a token from the
//! challenge's realm for the request's scopes (with the credentials, if any), caches it per
//! scope set until it expires, and fetches a new one on the next `401`. Redirects are followed
//! here (ureq's are off), and `Authorization` goes only to the registry's own origin: a blob
//! redirected to a CDN or another host is fetched without it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ureq::Agent;
use ureq::http::{Method, Response, StatusCode};

use super::auth::{Challenge, Token, parse_challenge, parse_token, token_url};
use super::credentials::{self, Credentials};
use super::error::{RegistryError, Result};

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 8;
/// Bytes of an error or JSON response read at most.
pub(crate) const SMALL_BODY: u64 = 4 << 20;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Speak plain HTTP even to a non-loopback registry (`--tls-verify=false`).
    pub insecure: bool,
    /// Use these credentials instead of the stored ones (login).
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
}

/// A client of one registry. Shared by the threads of a pull or push.
#[derive(Debug)]
pub struct Client {
    registry: String,
    base: String,
    agent: Agent,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
}

/// The body of a request: none, or bytes (re-sent as they are after a `401`).
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
}

/// The `scheme://host[:port]` part of an absolute URL.
pub fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    &url[..end]
}

/// Resolves a `Location` against the URL it came with (absolute, absolute-path or relative).
pub fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    if location.starts_with('/') {
        return format!("{}{location}", origin(base));
    }
    let path_end = base.find('?').unwrap_or(base.len());
    let dir = base[..path_end].rfind('/').map_or(base, |i| &base[..=i]);
    format!("{dir}{location}")
}

/// Adds `key=value` (value escaped) to a URL's query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", super::auth::query_escape(value))
}

/// Whether the `Authorization` header may go with a request to `url`: only to the registry's
/// own origin, and never again once a redirect left it.
pub fn auth_allowed(registry_origin: &str, url: &str, left_before: bool) -> bool {
    !left_before && origin(url).eq_ignore_ascii_case(registry_origin)
}

impl Client {
    /// A client of `registry` (a reference's domain, e.g. `127.0.0.1:5000` or `docker.io`).
    pub fn new(registry: &str, opts: &ClientOptions) -> Result<Client> {
        let host = if registry == crate::refs::DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            registry
        };
        let loopback = credentials::is_loopback(registry);
        let insecure = opts.insecure || credentials::is_insecure(registry)?;
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(insecure)
            .build();
        let mut cfg = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_idle_connections_per_host(8);
        if loopback {
            cfg = cfg.proxy(None);
        }
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => credentials::lookup(registry)?,
        };
        let mut client = Client {
            registry: registry.to_string(),
            base: format!("https://{host}"),
            agent: cfg.build().new_agent(),
            creds,
            auth: Mutex::new(AuthState::default()),
        };
        if loopback {
            client.base = format!("http://{host}");
        } else if insecure {
            // Insecure: HTTPS without verification if the registry speaks it, else HTTP.
            let https = client.raw(&Method::GET, &client.url(""), &[], None, Body::Empty);
            if let Err(RegistryError::Unreachable { .. }) = https {
                client.base = format!("http://{host}");
            }
        }
        Ok(client)
    }

    /// The registry's name as in references.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `<base>/v2/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// Checks that the registry answers and accepts our credentials (`GET /v2/`).
    pub fn ping(&self) -> Result<()> {
        let resp = self.send(Method::GET, &self.url(""), &[], &[], Body::Empty)?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.status_error(resp, "GET /v2/"))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` value for `scopes`, fetching a token when needed.
    fn authorization(&self, scopes: &[String]) -> Result<Option<String>> {
        let challenge = self.state().challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => {
                Ok(self.creds.as_ref().map(|c| format!("Basic {}", c.encode())))
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: _,
            }) => {
                let key = scopes.join(" ");
                if let Some(t) = self.state().tokens.get(&key).filter(|t| !t.is_stale()) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
                let value = format!("Bearer {}", token.value);
                self.state().tokens.insert(key, token);
                Ok(Some(value))
            }
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<Token> {
        let url = token_url(realm, service, scopes);
        let mut req = ureq::http::Request::get(&url);
        // Credentials for a registry spoken to over HTTPS never go to a plain-HTTP token
        // server (a hostile or misconfigured realm would collect them in clear text).
        let cleartext = realm.starts_with("http://") && !self.base.starts_with("http://");
        if let Some(c) = self.creds.as_ref().filter(|_| !cleartext) {
            req = req.header("Authorization", format!("Basic {}", c.encode()));
        }
        let req = req.body(()).map_err(|e| self.bad(&url, e.to_string()))?;
        let resp = self.agent.run(req).map_err(|e| self.unreachable(&url, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let (code, message) = error_message(resp);
            let message = if code.is_empty() && message == "unauthorized" {
                format!("the token server {realm} refused the credentials")
            } else {
                message
            };
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                message,
            });
        }
        if !status.is_success() {
            return Err(self.status_error(resp, "token request"));
        }
        let body = read_small(resp).map_err(|e| self.bad(&url, e))?;
        parse_token(&body).map_err(|p| self.bad(&url, format!("token response: {p}")))
    }

    /// Sends one request with auth and redirects handled. `scopes` are the token scopes the
    /// request needs. Returns whatever final response came (callers judge the status).
    pub fn send(
        &self,
        method: Method,
        url: &str,
        scopes: &[String],
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>> {
        let registry_origin = origin(&self.base).to_string();
        let mut url = url.to_string();
        let mut left = false;
        let mut scopes = scopes.to_vec();
        let mut auth_retried = false;
        for _ in 0..MAX_REDIRECTS {
            let send_auth = auth_allowed(&registry_origin, &url, left);
            let authz = if send_auth {
                self.authorization(&scopes)?
            } else {
                None
            };
            let resp = self.raw(&method, &url, headers, authz.as_deref(), body)?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && send_auth && !auth_retried {
                let ch = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(ch) = ch {
                    auth_retried = true;
                    if let Challenge::Bearer { scope: Some(s), .. } = &ch
                        && !covered(&scopes, s)
                    {
                        scopes.push(s.clone());
                    }
                    let mut st = self.state();
                    st.tokens.remove(&scopes.join(" "));
                    st.challenge = Some(ch);
                    continue;
                }
            }
            let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let follow = redirect && (method == Method::GET || method == Method::HEAD);
            let location = resp.headers().get("location").and_then(|v| v.to_str().ok());
            match location {
                Some(loc) if follow => {
                    let next = resolve_location(&url, loc);
                    left |= !origin(&next).eq_ignore_ascii_case(&registry_origin);
                    url = next;
                }
                _ => return Ok(resp),
            }
        }
        Err(RegistryError::Redirects {
            registry: self.registry.clone(),
            url,
        })
    }

    fn raw(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        authz: Option<&str>,
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>> {
        let mut b = ureq::http::Request::builder()
            .method(method.clone())
            .uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = authz {
            b = b.header("Authorization", a);
        }
        let sent = match body {
            Body::Empty => b
                .body(())
                .map(|r| self.agent.run(r))
                .map_err(|e| self.bad(url, e.to_string()))?,
            Body::Bytes(data) => b
                .body(data)
                .map(|r| self.agent.run(r))
                .map_err(|e| self.bad(url, e.to_string()))?,
        };
        sent.map_err(|e| self.unreachable(url, e))
    }

    pub(crate) fn unreachable(&self, url: &str, e: ureq::Error) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.registry.clone(),
            url: url.to_string(),
            source: Box::new(e),
        }
    }

    pub(crate) fn bad(&self, what: &str, problem: impl Into<String>) -> RegistryError {
        RegistryError::BadResponse {
            registry: self.registry.clone(),
            what: what.to_string(),
            problem: problem.into(),
        }
    }

    /// The error for an unexpected status: 401 unauthorized, 403 denied, `NAME_UNKNOWN`, or
    /// the status with the registry's message.
    pub fn status_error(&self, resp: Response<ureq::Body>, what: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let (code, message) = error_message(resp);
        match (status, code.as_str()) {
            (401, _) => RegistryError::Unauthorized {
                registry: self.registry.clone(),
                message,
            },
            (403, _) => RegistryError::Denied {
                what: format!("{} {what}", self.registry),
                message,
            },
            (_, "NAME_UNKNOWN") => RegistryError::NameUnknown {
                repository: what.to_string(),
                message,
            },
            _ => RegistryError::Status {
                registry: self.registry.clone(),
                what: what.to_string(),
                status,
                message,
            },
        }
    }
}

/// True when `scope` (from a challenge) asks for nothing the request's scopes do not: the same
/// resource with a subset of the actions.
pub fn covered(scopes: &[String], scope: &str) -> bool {
    let split = |s: &str| {
        s.rsplit_once(':')
            .map(|(r, a)| (r.to_string(), a.to_string()))
    };
    let Some((res, actions)) = split(scope) else {
        return scopes.iter().any(|s| s == scope);
    };
    scopes.iter().filter_map(|s| split(s)).any(|(r, have)| {
        r == res
            && actions
                .split(',')
                .all(|a| have.split(',').any(|h| h == a || h == "*"))
    })
}

/// Reads a small body (JSON, errors) into memory.
pub(crate) fn read_small(resp: Response<ureq::Body>) -> std::result::Result<Vec<u8>, String> {
    resp.into_body()
        .with_config()
        .limit(SMALL_BODY)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// The first `{"errors":[{"code","message"}]}` entry of an error response, else its text, else
/// the status reason.
pub fn error_message(resp: Response<ureq::Body>) -> (String, String) {
    let reason = resp
        .status()
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let body = read_small(resp).unwrap_or_default();
    parse_error_body(&body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body).trim().to_string();
        let text = if text.is_empty() || text.len() > 200 {
            reason
        } else {
            text
        };
        (String::new(), text)
    })
}

fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("errors")?.get(0)?;
    let code = e
        .get("code")
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_string();
    let message = e
        .get("message")
        .and_then(|c| c.as_str())
        .filter(|m| !m.is_empty())
        .map_or_else(
            || code.to_ascii_lowercase().replace('_', " "),
            str::to_string,
        );
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_locations() {
        assert_eq!(
            origin("http://127.0.0.1:5000/v2/x"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(origin("https://h"), "https://h");
        let base = "http://127.0.0.1:5000/v2/a/blobs/uploads/?x=1";
        assert_eq!(
            resolve_location(base, "/v2/a/blobs/uploads/u1?_state=s"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=s"
        );
        assert_eq!(
            resolve_location(base, "https://cdn.example/blob?sig=1"),
            "https://cdn.example/blob?sig=1"
        );
        assert_eq!(
            resolve_location("http://h/v2/a/blobs/x", "y"),
            "http://h/v2/a/blobs/y"
        );
        assert_eq!(
            with_query("http://h/u?_state=1", "digest", "sha256:ab"),
            "http://h/u?_state=1&digest=sha256%3Aab"
        );
        assert_eq!(with_query("http://h/u", "n", "10"), "http://h/u?n=10");
    }

    #[test]
    fn authorization_stays_on_the_registry_origin() {
        let reg = "http://127.0.0.1:5000";
        assert!(auth_allowed(
            reg,
            "http://127.0.0.1:5000/v2/a/blobs/x",
            false
        ));
        assert!(!auth_allowed(
            reg,
            "http://127.0.0.2:5000/v2/a/blobs/x",
            false
        ));
        assert!(!auth_allowed(reg, "http://127.0.0.1:5001/x", false));
        assert!(!auth_allowed(reg, "https://127.0.0.1:5000/x", false));
        // Once a redirect left the registry, a hop back does not get the header either.
        assert!(!auth_allowed(
            reg,
            "http://127.0.0.1:5000/v2/a/blobs/x",
            true
        ));
    }

    #[test]
    fn challenge_scopes() {
        let have = vec!["repository:a/b:pull,push".to_string()];
        assert!(covered(&have, "repository:a/b:pull"));
        assert!(covered(&have, "repository:a/b:push,pull"));
        assert!(!covered(&have, "repository:a/c:pull"));
        assert!(!covered(&have, "repository:a/b:delete"));
        assert!(covered(
            &["registry:catalog:*".into()],
            "registry:catalog:*"
        ));
    }

    #[test]
    fn error_bodies() {
        let b =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            parse_error_body(b),
            Some(("MANIFEST_UNKNOWN".into(), "manifest unknown".into()))
        );
        assert_eq!(
            parse_error_body(br#"{"errors":[{"code":"DENIED"}]}"#),
            Some(("DENIED".into(), "denied".into()))
        );
        assert_eq!(parse_error_body(b"404 page not found"), None);
    }
}

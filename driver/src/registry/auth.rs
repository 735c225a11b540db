//! Registry authentication, the pure parts: `WWW-Authenticate` challenges, the token URL and
//! the token endpoint's response (docker's token auth spec).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send `Authorization: Basic base64(user:pass)`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: get a token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (RFC 7235: scheme, then comma-separated `key=value`
/// with quoted strings). Unknown schemes give None.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k=v, k="quoted \" value"` → map with lowercase keys.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.insert(key, value);
    }
    out
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token request URL: `realm?service=…&scope=…&scope=…`.
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[String]) -> String {
    let mut q: Vec<String> = Vec::new();
    if let Some(s) = service {
        q.push(format!("service={}", query_escape(s)));
    }
    for s in scopes {
        q.push(format!("scope={}", query_escape(s)));
    }
    if q.is_empty() {
        return realm.to_string();
    }
    let sep = if realm.contains('?') { '&' } else { '?' };
    format!("{realm}{sep}{}", q.join("&"))
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl Token {
    /// True when it is (nearly) expired.
    pub fn is_stale(&self) -> bool {
        Instant::now() + Duration::from_secs(5) >= self.expires
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses a token endpoint's JSON (`token` or `access_token`, `expires_in` seconds, 60 when
/// absent as the spec says).
pub fn parse_token(body: &[u8]) -> Result<Token, String> {
    let r: TokenResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let value = r
        .token
        .or(r.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("no token in the response")?;
    let secs = r.expires_in.filter(|s| *s > 0).unwrap_or(60);
    Ok(Token {
        value,
        expires: Instant::now() + Duration::from_secs(secs),
    })
}

/// The scope to pull from (`pull`) or push to (`pull,push`) a repository.
pub fn repo_scope(path: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{path}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
    }

    #[test]
    fn bearer_challenge_odd_spacing_and_escapes() {
        let h = r#"bearer  realm = "http://127.0.0.1:1/t?x=1" , error="insufficient_scope", scope="a:\"b\":pull,push""#;
        let Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) = parse_challenge(h)
        else {
            panic!("not parsed");
        };
        assert_eq!(realm, "http://127.0.0.1:1/t?x=1");
        assert_eq!(service, None);
        assert_eq!(scope.as_deref(), Some(r#"a:"b":pull,push"#));
        assert_eq!(
            token_url(&realm, Some("reg x"), &["repository:a/b:pull,push".into()]),
            "http://127.0.0.1:1/t?x=1&service=reg%20x&scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn basic_and_unknown() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        assert_eq!(parse_challenge(r#"Negotiate abc"#), None);
        assert_eq!(
            parse_challenge(r#"Bearer service="x""#),
            None,
            "realm is required"
        );
    }

    #[test]
    fn token_responses() {
        let t = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.value, "abc");
        assert!(!t.is_stale());
        let t = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.value, "xyz");
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(b"nope").is_err());
    }
}

//! Image references: parsing and normalisation exactly as `github.com/distribution/reference`
//! does it (the grammar docker uses), plus resolution of a CLI argument (name, tag, digest or
//! image-ID prefix) against the store's index, the way the docker daemon resolves one.
//!
//! Grammar (from distribution/reference's `regexp.go`):
//!
//! ```text
//! reference     := name [ ":" tag ] [ "@" digest ]
//! name          := [domain '/'] remote-name
//! domain        := host [':' port-number]
//! host          := domain-name | IPv4address | \[ IPv6address \]
//! remote-name   := path-component ['/' path-component]*
//! path-component:= alpha-numeric [separator alpha-numeric]*
//! separator     := /[_.]|__|[-]+/
//! tag           := /[\w][\w.-]{0,127}/
//! digest        := algorithm ":" encoded
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Domain of Docker Hub used when a name has none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy Docker Hub domain, canonicalised to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of official images on Docker Hub.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag added to a name that has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository path (the part after the domain).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

const ALPHANUMERIC: &str = r"[a-z0-9]+";
const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
const DOMAIN_NAME_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const OPTIONAL_PORT: &str = r"(?::[0-9]+)?";
// `\w` in Go's RE2 is ASCII only; the regex crate's is Unicode, so spell it out.
const TAG: &str = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
const IPV6_ADDRESS: &str = r"\[(?:[a-fA-F0-9:]+)\]";

fn domain_and_port() -> String {
    let domain_name = format!(r"{DOMAIN_NAME_COMPONENT}(?:\.{DOMAIN_NAME_COMPONENT})*");
    let host = format!(r"(?:{domain_name}|{IPV6_ADDRESS})");
    format!("{host}{OPTIONAL_PORT}")
}

fn remote_name() -> String {
    let path_component = format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*");
    format!("{path_component}(?:/{path_component})*")
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("reference grammar regex is valid")
}

static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
    regex(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$"))
});
static ANCHORED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
});
static ANCHORED_TAG_RE: LazyLock<Regex> = LazyLock::new(|| regex(&format!("^{TAG}$")));
static ANCHORED_DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| regex(&format!("^{DIGEST}$")));
static ANCHORED_IDENTIFIER_RE: LazyLock<Regex> = LazyLock::new(|| regex("^[a-f0-9]{64}$"));

/// Why a string is not a valid reference, tag or digest. Every variant names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    #[error("invalid reference format: {0:?}")]
    InvalidFormat(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error(
        "invalid reference format: repository name ({0}) must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
    )]
    NameTooLong(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid tag format: {0:?}")]
    InvalidTag(String),
    #[error("invalid checksum digest format: {0:?}")]
    DigestFormat(String),
    #[error("invalid checksum digest length: {0:?}")]
    DigestLength(String),
    #[error("unsupported digest algorithm: {0:?}")]
    DigestUnsupported(String),
}

/// A parsed reference. `domain` is empty only for references from [`Reference::parse`] of a
/// name without a domain; everything from the `parse_normalized*` functions has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses `s` as-is (distribution's `Parse`): no default domain, no `library/`, no tag added.
    pub fn parse(s: &str) -> Result<Reference, RefError> {
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        let Some(caps) = REFERENCE_RE.captures(s) else {
            let lower = s.to_lowercase();
            if lower != s && REFERENCE_RE.is_match(&lower) {
                return Err(RefError::Uppercase(s.to_string()));
            }
            return Err(RefError::InvalidFormat(s.to_string()));
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        let (domain, path) = match ANCHORED_NAME_RE.captures(name) {
            Some(n) => (
                n.get(1).map_or("", |m| m.as_str()).to_string(),
                n.get(2).map_or("", |m| m.as_str()).to_string(),
            ),
            None => (String::new(), name.to_string()),
        };
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(RefError::NameTooLong(path));
        }
        let tag = caps.get(2).map(|m| m.as_str().to_string());
        let digest = match caps.get(3) {
            Some(m) => Some(validate_digest(m.as_str())?.to_string()),
            None => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Registry domain (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// Repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// Full repository name without tag or digest (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }
    /// True when there is neither tag nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// This reference with `tag` (validated) replacing any tag it had.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, RefError> {
        if !is_valid_tag(tag) {
            return Err(RefError::InvalidTag(tag.to_string()));
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }
    /// This reference with `digest` (validated) replacing any digest it had.
    pub fn with_digest(&self, digest: &str) -> Result<Reference, RefError> {
        let digest = validate_digest(digest)?;
        Ok(Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }
    /// The name alone, tag and digest dropped.
    pub fn trim(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }
    /// Adds `:latest` when there is neither tag nor digest (`TagNameOnly`).
    pub fn tag_name_only(self) -> Reference {
        if self.is_name_only() {
            Reference {
                tag: Some(DEFAULT_TAG.to_string()),
                ..self
            }
        } else {
            self
        }
    }

    /// The shortened name docker shows (`busybox`, `user/app`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_REPO_PREFIX)
                && !rest.contains('/')
            {
                return rest.to_string();
            }
            return self.path.clone();
        }
        self.name()
    }

    /// The familiar form of the whole reference (`busybox:latest`), used in all output.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        push_suffix(&mut s, self.tag(), self.digest());
        s
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d);
    }
}

/// The canonical string: `docker.io/library/busybox:latest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        push_suffix(&mut s, self.tag(), self.digest());
        f.write_str(&s)
    }
}

impl std::str::FromStr for Reference {
    type Err = RefError;
    /// Same as [`parse_normalized_named`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_normalized_named(s)
    }
}

/// True when `tag` matches the tag grammar `[\w][\w.-]{0,127}` (ASCII `\w`).
pub fn is_valid_tag(tag: &str) -> bool {
    ANCHORED_TAG_RE.is_match(tag)
}

/// Validates a digest the way go-digest does for the algorithms docker registers
/// (sha256, sha384, sha512): lowercase hex of the exact length.
pub fn validate_digest(d: &str) -> Result<&str, RefError> {
    let Some(i) = d.find(':').filter(|&i| i > 0 && i + 1 < d.len()) else {
        return Err(RefError::DigestFormat(d.to_string()));
    };
    let (alg, enc) = (&d[..i], &d[i + 1..]);
    let hex_len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            if !ANCHORED_DIGEST_RE.is_match(d) {
                return Err(RefError::DigestFormat(d.to_string()));
            }
            return Err(RefError::DigestUnsupported(d.to_string()));
        }
    };
    if enc.len() != hex_len {
        return Err(RefError::DigestLength(d.to_string()));
    }
    if !enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RefError::DigestFormat(d.to_string()));
    }
    Ok(d)
}

/// Splits a familiar name into domain and remote name (`splitDockerDomain`).
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, mut remote) = if maybe_domain == "localhost" {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN.to_string(), maybe_remote.to_string())
    } else if maybe_domain.contains(['.', ':']) || maybe_domain.to_lowercase() != maybe_domain {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else {
        (DEFAULT_DOMAIN.to_string(), name.to_string())
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_REPO_PREFIX}{remote}");
    }
    (domain, remote)
}

/// Parses a familiar name from the docker UI into a fully qualified reference
/// (`ParseNormalizedNamed`): `busybox` → `docker.io/library/busybox`. No tag is added.
pub fn parse_normalized_named(s: &str) -> Result<Reference, RefError> {
    if ANCHORED_IDENTIFIER_RE.is_match(s) {
        return Err(RefError::HexName(s.to_string()));
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote = remainder.split(':').next().unwrap_or("");
    if remote.to_lowercase() != remote {
        return Err(RefError::Uppercase(remote.to_string()));
    }
    Reference::parse(&format!("{domain}/{remainder}"))
}

/// [`parse_normalized_named`] plus the default tag: `busybox` → `docker.io/library/busybox:latest`.
/// A reference with tag and digest keeps both.
pub fn parse_normalized(s: &str) -> Result<Reference, RefError> {
    Ok(parse_normalized_named(s)?.tag_name_only())
}

/// docker's `ParseDockerRef`: normalised, `:latest` added when bare, and a reference with both
/// tag and digest reduced to the digest (which is what identifies the content).
pub fn parse_docker_ref(s: &str) -> Result<Reference, RefError> {
    let r = parse_normalized_named(s)?;
    if r.digest.is_some() {
        Ok(Reference { tag: None, ..r })
    } else {
        Ok(r.tag_name_only())
    }
}

/// What `ParseAnyReference` yields: a bare digest (from a 64-hex identifier or
/// `algorithm:hex`) or a normalised name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyReference {
    Digest(String),
    Named(Reference),
}

/// docker's `ParseAnyReference`: a full image ID (64 hex, `sha256:` implied), a full digest,
/// or a familiar name (normalised, no tag added).
pub fn parse_any_reference(s: &str) -> Result<AnyReference, RefError> {
    if ANCHORED_IDENTIFIER_RE.is_match(s) {
        return Ok(AnyReference::Digest(format!("sha256:{s}")));
    }
    if validate_digest(s).is_ok() {
        return Ok(AnyReference::Digest(s.to_string()));
    }
    parse_normalized_named(s).map(AnyReference::Named)
}

/// First 12 hex characters of an ID, `sha256:` stripped (what docker shows as IMAGE ID).
pub fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// Why a CLI argument did not resolve to an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    InvalidReference(#[from] RefError),
    /// The text is docker's (`No such image: busybox:latest`); the field is that familiar form.
    #[error("No such image: {0}")]
    NotFound(String),
    /// docker folds this into "No such image"; we say why.
    #[error("No such image: {arg}: short ID is ambiguous ({count} images match)")]
    Ambiguous { arg: String, count: usize },
}

/// A resolved argument: the image ID (`sha256:<hex>`) and, when it was found through a
/// reference, that reference (normalised, e.g. `docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: String,
    pub reference: Option<Reference>,
}

/// Resolves a CLI image argument as the docker daemon does (`GetImage`):
///
/// 1. a full 64-hex ID or `sha256:<64 hex>`: that exact image, or not found;
/// 2. otherwise the normalised name (`:latest` added; a `name:tag@digest` looks up
///    `name@digest`) in `refs`, keyed by the canonical reference string
///    (`Reference::to_string()`, e.g. `docker.io/library/busybox:latest`);
/// 3. otherwise an ID prefix (`ab12`, `sha256:ab12`) matching exactly one of `ids`.
///
/// `ids` are `sha256:<hex>` (bare hex is accepted too); the returned id keeps the form it
/// had in `ids` or `refs`.
pub fn resolve_image(
    arg: &str,
    refs: &BTreeMap<String, String>,
    ids: &[String],
) -> Result<Resolved, ResolveError> {
    let named = match parse_any_reference(arg)? {
        AnyReference::Digest(d) => {
            let want = split_alg(&d);
            return ids
                .iter()
                .find(|id| split_alg(id) == want)
                .map(|id| Resolved {
                    id: id.clone(),
                    reference: None,
                })
                .ok_or(ResolveError::NotFound(d));
        }
        AnyReference::Named(r) => r,
    };
    let key = if named.digest.is_some() {
        Reference {
            tag: None,
            ..named.clone()
        }
    } else {
        named.clone().tag_name_only()
    };
    if let Some(id) = refs.get(&key.to_string()) {
        return Ok(Resolved {
            id: id.clone(),
            reference: Some(key),
        });
    }
    let not_found = || ResolveError::NotFound(named.clone().tag_name_only().familiar());
    // digestset.Lookup: `alg:prefix` restricts the algorithm; otherwise the whole arg is a prefix.
    let (alg, prefix) = match arg.split_once(':') {
        Some((a, p)) if matches!(a, "sha256" | "sha384" | "sha512") => (Some(a), p),
        _ => (None, arg),
    };
    let matches: Vec<&String> = ids
        .iter()
        .filter(|id| {
            let (id_alg, hex) = split_alg(id);
            hex.starts_with(prefix) && alg.is_none_or(|a| a == id_alg)
        })
        .collect();
    match matches.as_slice() {
        [] => Err(not_found()),
        [one] => Ok(Resolved {
            id: (*one).clone(),
            reference: None,
        }),
        many => {
            // An exact full match wins even if longer IDs share the prefix (not possible for
            // fixed-length hex, kept for parity with digestset).
            if let Some(exact) = many.iter().find(|id| split_alg(id).1 == prefix) {
                return Ok(Resolved {
                    id: (*exact).clone(),
                    reference: None,
                });
            }
            Err(ResolveError::Ambiguous {
                arg: arg.to_string(),
                count: many.len(),
            })
        }
    }
}

fn split_alg(id: &str) -> (&str, &str) {
    id.split_once(':').unwrap_or(("sha256", id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_grammar_compiles() {
        assert!(REFERENCE_RE.is_match("busybox"));
        assert!(ANCHORED_NAME_RE.is_match("localhost:5000/a/b"));
    }

    #[test]
    fn short_id_strips_algorithm() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}

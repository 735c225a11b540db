//! Where registry credentials and settings live.
//!
//! Credentials: a docker-config-compatible JSON file, `{"auths":{"HOST":{"auth":"base64(user:pass)"}}}`,
//! mode 0600: `$REGISTRY_AUTH_FILE` if set, else `$XDG_CONFIG_HOME/cairn/auth.json` (default
//! `~/.config/cairn/auth.json`). Reading falls back to `${DOCKER_CONFIG:-~/.docker}/config.json`.
//! Other keys of the file are kept when it is rewritten. Docker Hub is stored under docker's
//! key `https://index.docker.io/v1/`.
//!
//! Settings: `$XDG_CONFIG_HOME/cairn/registries.json` (default `~/.config/cairn/`),
//! `{"insecure":["host:port", …]}` lists registries spoken to over plain HTTP.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::error::{RegistryError, Result};

/// docker's key for Docker Hub in `auths`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    /// `base64(user:pass)`, the `auth` field and the Basic header value.
    pub fn encode(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.password))
    }

    /// Parses an `auth` field.
    pub fn decode(auth: &str) -> Option<Credentials> {
        let raw = STANDARD.decode(auth.trim()).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })
    }
}

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn config_home() -> Option<PathBuf> {
    env_path("XDG_CONFIG_HOME").or_else(|| env_path("HOME").map(|h| h.join(".config")))
}

/// The credentials file cairn writes.
pub fn auth_file() -> Option<PathBuf> {
    env_path("REGISTRY_AUTH_FILE").or_else(|| config_home().map(|c| c.join("cairn/auth.json")))
}

/// docker's config file, read as a fallback.
pub fn docker_config_file() -> Option<PathBuf> {
    env_path("DOCKER_CONFIG")
        .or_else(|| env_path("HOME").map(|h| h.join(".docker")))
        .map(|d| d.join("config.json"))
}

/// The settings file (`{"insecure":[…]}`).
pub fn registries_file() -> Option<PathBuf> {
    config_home().map(|c| c.join("cairn/registries.json"))
}

/// The `auths` key a registry is stored under.
pub fn auth_key(registry: &str) -> &str {
    if registry == crate::refs::DEFAULT_DOMAIN {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// The host part of an `auths` key (`https://host/v1/` → `host`; docker's convertToHostname).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => crate::refs::DEFAULT_DOMAIN,
        h => h,
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::ConfigIo {
                path: path.into(),
                source,
            });
        }
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Value::Object(Map::new())));
    }
    let v: Value = serde_json::from_slice(&data).map_err(|e| RegistryError::ConfigFormat {
        path: path.into(),
        problem: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(RegistryError::ConfigFormat {
            path: path.into(),
            problem: "not a JSON object".into(),
        });
    }
    Ok(Some(v))
}

/// The credentials for `registry` in one file's JSON.
fn find(json: &Value, registry: &str) -> Option<Credentials> {
    let auths = json.get("auths")?.as_object()?;
    auths
        .iter()
        .filter(|(k, _)| key_host(k) == registry)
        .find_map(|(_, v)| Credentials::decode(v.get("auth")?.as_str()?))
}

/// Credentials for `registry` from the file at `path`.
pub fn lookup_in(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    Ok(read_json(path)?.and_then(|v| find(&v, registry)))
}

/// Credentials for `registry`: cairn's file, else docker's.
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    for path in [auth_file(), docker_config_file()].into_iter().flatten() {
        if let Some(c) = lookup_in(&path, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Changes the `auths` of the file at `path` (created 0600 if needed) and rewrites it
/// atomically, keeping everything else in it.
fn update(path: &Path, change: impl FnOnce(&mut Map<String, Value>) -> bool) -> Result<bool> {
    let io = |source| RegistryError::ConfigIo {
        path: path.into(),
        source,
    };
    let mut json = read_json(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let obj = json.as_object_mut().expect("read_json returns objects");
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let changed = change(auths.as_object_mut().expect("made an object"));
    if !changed {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut data = serde_json::to_vec_pretty(&json).expect("JSON values serialise");
    data.push(b'\n');
    // A leftover of a crashed writer (or anything planted there) is removed, and the new
    // file must be created here: no following a symlink, no reuse of an existing file.
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(&data)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(true)
}

/// Stores credentials for `registry` in the file at `path`.
pub fn store_in(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    update(path, |auths| {
        auths.retain(|k, _| key_host(k) != registry);
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(creds.encode()));
        auths.insert(auth_key(registry).to_string(), Value::Object(entry));
        true
    })
    .map(|_| ())
}

/// Removes the credentials for `registry` from the file at `path`; false when there were none.
pub fn remove_in(path: &Path, registry: &str) -> Result<bool> {
    update(path, |auths| {
        let before = auths.len();
        auths.retain(|k, _| key_host(k) != registry);
        auths.len() != before
    })
}

/// True when `registry` is spoken to over plain HTTP: loopback hosts, and those listed in
/// the settings file.
pub fn is_insecure(registry: &str) -> Result<bool> {
    if is_loopback(registry) {
        return Ok(true);
    }
    let Some(path) = registries_file() else {
        return Ok(false);
    };
    let Some(json) = read_json(&path)? else {
        return Ok(false);
    };
    let list = match json.get("insecure") {
        None => return Ok(false),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(RegistryError::ConfigFormat {
                path,
                problem: "\"insecure\" must be a list of host[:port] strings".into(),
            });
        }
    };
    Ok(list.iter().any(|v| v.as_str() == Some(registry)))
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    if let Ok(ip) = registry.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_other_keys_and_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/auth.json");
        let c = Credentials {
            username: "user".into(),
            password: "p:a ss".into(),
        };
        assert_eq!(lookup_in(&p, "127.0.0.1:5000").unwrap(), None);
        store_in(&p, "127.0.0.1:5000", &c).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dXNlcjpwOmEgc3M=");
        assert_eq!(lookup_in(&p, "127.0.0.1:5000").unwrap(), Some(c.clone()));
        assert_eq!(lookup_in(&p, "127.0.0.1:5001").unwrap(), None);
        // Other keys survive; docker hub goes under docker's key.
        std::fs::write(
            &p,
            r#"{"credsStore":"x","auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwOmEgc3M="}}}"#,
        )
        .unwrap();
        store_in(&p, "docker.io", &c).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "x");
        assert!(v["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        assert_eq!(lookup_in(&p, "docker.io").unwrap(), Some(c));
        assert!(remove_in(&p, "127.0.0.1:5000").unwrap());
        assert!(!remove_in(&p, "127.0.0.1:5000").unwrap());
        assert_eq!(lookup_in(&p, "127.0.0.1:5000").unwrap(), None);
    }

    #[test]
    fn bad_file_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("auth.json");
        std::fs::write(&p, "[1]").unwrap();
        assert!(matches!(
            lookup_in(&p, "x"),
            Err(RegistryError::ConfigFormat { .. })
        ));
    }

    #[test]
    fn loopback() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn hub_key_hosts() {
        assert_eq!(key_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(key_host("http://h:1"), "h:1");
        assert_eq!(key_host("h:1"), "h:1");
    }
}

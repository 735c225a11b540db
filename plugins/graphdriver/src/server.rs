//! Docker's legacy plugin protocol for a graphdriver: `POST /Plugin.Activate` and
//! `POST /GraphDriver.<Method>` with JSON bodies, answered with JSON (`{"Err": "..."}` and
//! status 500 on failure). `Diff` answers with the raw layer tar; `ApplyDiff?id=&parent=`
//! takes one as its body. Each request is served on its own thread: dockerd calls `Get`/`Put`
//! concurrently and a long `Diff` must not hold up the others.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cairn_driver::diff::ChangeKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tiny_http::{Header, Request, Response, StatusCode};

use crate::layers::Layers;
use crate::{Error, Result};

const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// `Create`, `Remove`, `Get`, `Put`, `Exists`, `Diff`, `Changes`, `DiffSize`, `GetMetadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LayerRequest {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Parent")]
    parent: String,
}

/// `Init`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitRequest {
    #[serde(rename = "Home")]
    home: PathBuf,
}

#[derive(Debug, Serialize)]
struct ChangeJson {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: u8,
}

/// The plugin: one driver home, set by `GraphDriver.Init`.
#[derive(Debug)]
pub struct Plugin {
    mount_program: PathBuf,
    layers: RwLock<Option<Arc<Layers>>>,
}

impl Plugin {
    /// A plugin whose unions are mounted by `<mount_program> mount`.
    pub fn new(mount_program: &Path) -> Plugin {
        Plugin {
            mount_program: mount_program.to_path_buf(),
            layers: RwLock::new(None),
        }
    }

    fn layers(&self) -> Result<Arc<Layers>> {
        self.layers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::NotInitialised)
    }

    /// Unmounts every union (the plugin is stopping).
    pub fn cleanup(&self) -> Result<()> {
        match self
            .layers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(l) => l.cleanup(),
            None => Ok(()),
        }
    }

    /// Serves requests from `server` until it is unblocked.
    pub fn serve(self: &Arc<Self>, server: &tiny_http::Server) {
        for req in server.incoming_requests() {
            let me = Arc::clone(self);
            std::thread::spawn(move || me.handle(req));
        }
    }

    fn handle(&self, mut req: Request) {
        let url = req.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let method = path.trim_start_matches('/').to_string();
        let reply = if method == "GraphDriver.ApplyDiff" {
            let q = parse_query(query);
            let id = q.get("id").cloned().unwrap_or_default();
            self.layers()
                .and_then(|l| l.apply_diff(&id, req.as_reader()))
                .map(|size| Reply::Json(json!({ "Size": size })))
        } else if method == "GraphDriver.Diff" {
            self.diff(&mut req)
        } else {
            let mut body = Vec::new();
            match req.as_reader().read_to_end(&mut body) {
                Ok(_) => self.call(&method, &body),
                Err(source) => Err(Error::Io {
                    what: "read request",
                    path: PathBuf::from(&method),
                    source,
                }),
            }
        };
        let resp = match reply {
            Ok(Reply::Json(v)) => json_response(200, &v).boxed(),
            Ok(Reply::Stream(r)) => Response::new(
                StatusCode(200),
                vec![header("Content-Type", "application/x-tar")],
                r,
                None,
                None,
            )
            .boxed(),
            Err(e) => {
                log::warn!("{method}: {e}");
                json_response(500, &json!({ "Err": e.to_string() })).boxed()
            }
        };
        let _ = req.respond(resp);
    }

    fn diff(&self, req: &mut Request) -> Result<Reply> {
        let mut body = Vec::new();
        let _ = req.as_reader().read_to_end(&mut body);
        let r: LayerRequest = parse("GraphDriver.Diff", &body)?;
        let layers = self.layers()?;
        if !layers.exists(&r.id) {
            return Err(Error::NoSuchLayer(r.id));
        }
        let (rd, wr) = std::io::pipe().map_err(|source| Error::Io {
            what: "pipe for",
            path: PathBuf::from(&r.id),
            source,
        })?;
        std::thread::spawn(move || {
            if let Err(e) = layers.diff(&r.id, wr) {
                log::warn!("Diff {}: {e}", r.id);
            }
        });
        Ok(Reply::Stream(Box::new(rd)))
    }

    fn call(&self, method: &str, body: &[u8]) -> Result<Reply> {
        let ok = || Ok(Reply::Json(json!({})));
        match method {
            "Plugin.Activate" => Ok(Reply::Json(json!({ "Implements": ["GraphDriver"] }))),
            "GraphDriver.Init" => {
                let r: InitRequest = parse(method, body)?;
                let l = Layers::new(&r.home, &self.mount_program)?;
                let mut cur = self.layers.write().unwrap_or_else(|e| e.into_inner());
                // A re-Init of the same home (dockerd restarted) keeps the mount counts.
                if cur.as_ref().is_none_or(|c| c.home() != r.home) {
                    *cur = Some(Arc::new(l));
                }
                ok()
            }
            "GraphDriver.Capabilities" => Ok(Reply::Json(json!({
                // Diff writes cairn's own canonical tar, not the bytes ApplyDiff received:
                // dockerd keeps its tar-split metadata to reproduce the original layers.
                "Capabilities": { "ReproducesExactDiffs": false }
            }))),
            "GraphDriver.Status" => {
                let l = self.layers()?;
                Ok(Reply::Json(json!({ "Status": [
                    ["Home", l.home().to_string_lossy()],
                    ["Union", "cairn (FUSE)"],
                    ["Mounted", l.mounted().to_string()],
                ]})))
            }
            "GraphDriver.Cleanup" => {
                self.cleanup()?;
                ok()
            }
            _ => self.layer_call(method, parse(method, body)?),
        }
    }

    fn layer_call(&self, method: &str, r: LayerRequest) -> Result<Reply> {
        let l = self.layers()?;
        let v = match method {
            "GraphDriver.Create" => {
                l.create(&r.id, &r.parent, false)?;
                json!({})
            }
            "GraphDriver.CreateReadWrite" => {
                l.create(&r.id, &r.parent, true)?;
                json!({})
            }
            "GraphDriver.Remove" => {
                l.remove(&r.id)?;
                json!({})
            }
            "GraphDriver.Get" => json!({ "Dir": l.get(&r.id)? }),
            "GraphDriver.Put" => {
                l.put(&r.id)?;
                json!({})
            }
            "GraphDriver.Exists" => json!({ "Exists": l.exists(&r.id) }),
            "GraphDriver.GetMetadata" => {
                let m: HashMap<_, _> = l.metadata(&r.id)?.into_iter().collect();
                json!({ "Metadata": m })
            }
            "GraphDriver.Changes" => {
                let ch: Vec<ChangeJson> = l
                    .changes(&r.id)?
                    .into_iter()
                    .map(|c| ChangeJson {
                        path: c.path,
                        kind: match c.kind {
                            ChangeKind::Modify => 0,
                            ChangeKind::Add => 1,
                            ChangeKind::Delete => 2,
                        },
                    })
                    .collect();
                json!({ "Changes": ch })
            }
            "GraphDriver.DiffSize" => json!({ "Size": l.diff_size(&r.id)? }),
            _ => return Err(Error::UnknownEndpoint(method.to_string())),
        };
        Ok(Reply::Json(v))
    }
}

enum Reply {
    Json(Value),
    Stream(Box<dyn Read + Send>),
}

fn parse<T: for<'de> Deserialize<'de> + Default>(endpoint: &str, body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|source| Error::Request {
        endpoint: endpoint.to_string(),
        source,
    })
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header is valid")
}

fn json_response(status: u16, v: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_data(serde_json::to_vec(v).unwrap_or_default())
        .with_status_code(status)
        .with_header(header("Content-Type", CONTENT_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_and_calls_before_init() {
        let p = Plugin::new(Path::new("/nonexistent"));
        let Ok(Reply::Json(v)) = p.call("Plugin.Activate", b"{}") else {
            panic!("activate failed")
        };
        assert_eq!(v, json!({ "Implements": ["GraphDriver"] }));
        let e = p
            .call("GraphDriver.Exists", br#"{"ID":"x"}"#)
            .err()
            .unwrap();
        assert!(matches!(e, Error::NotInitialised), "{e}");
    }

    #[test]
    fn create_exists_remove_through_the_protocol() {
        let t = tempfile::tempdir().unwrap();
        let p = Plugin::new(Path::new("/nonexistent"));
        let init = serde_json::to_vec(&json!({"Home": t.path(), "Opts": null})).unwrap();
        assert!(p.call("GraphDriver.Init", &init).is_ok());
        let exists = |p: &Plugin| match p.call("GraphDriver.Exists", br#"{"ID":"l1"}"#) {
            Ok(Reply::Json(v)) => v["Exists"] == json!(true),
            _ => panic!("Exists failed"),
        };
        assert!(!exists(&p));
        p.call("GraphDriver.Create", br#"{"ID":"l1","Parent":""}"#)
            .ok()
            .unwrap();
        assert!(exists(&p));
        let e = p
            .call("GraphDriver.Create", br#"{"ID":"l1"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("already exists"), "{e}");
        p.call("GraphDriver.Remove", br#"{"ID":"l1"}"#)
            .ok()
            .unwrap();
        assert!(!exists(&p));
        let e = p.call("GraphDriver.Nope", b"{}").err().unwrap();
        assert!(matches!(e, Error::UnknownEndpoint(_)), "{e}");
    }
}

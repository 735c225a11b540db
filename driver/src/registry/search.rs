//! `search`: the repositories of a registry's catalog (`/v2/_catalog`, paginated through
//! `Link: <…>; rel="next"` with `n` and `last`) whose name contains a term, with their tags
//! (`/v2/<name>/tags/list`, paginated the same way).

use ureq::http::Method;

use super::client::{Body, Client, ClientOptions, read_small, resolve_location, with_query};
use super::error::{RegistryError, Result};

/// Entries asked for per page.
const PAGE: usize = 100;
/// Pages followed at most (a registry that always says "next" cannot loop us forever).
const MAX_PAGES: usize = 1000;

/// One repository found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Repository path inside the registry.
    pub name: String,
    /// Its tags (empty when not asked for).
    pub tags: Vec<String>,
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| url.to_string())
    })
}

/// GETs a paginated list: `key` of each page's JSON object is an array of strings.
fn list(client: &Client, first: &str, scope: &str, key: &str, want: usize) -> Result<Vec<String>> {
    let scopes = vec![scope.to_string()];
    let mut out = Vec::new();
    let mut url = with_query(first, "n", &PAGE.to_string());
    for _ in 0..MAX_PAGES {
        let resp = client.send(Method::GET, &url, &scopes, &[], Body::Empty)?;
        if !resp.status().is_success() {
            return Err(client.status_error(resp, &format!("GET {first}")));
        }
        let next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = read_small(resp).map_err(|e| client.bad(first, e))?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| client.bad(first, e.to_string()))?;
        let items = match v.get(key) {
            Some(serde_json::Value::Array(a)) => a,
            Some(serde_json::Value::Null) | None => break,
            Some(_) => return Err(client.bad(first, format!("\"{key}\" is not a list"))),
        };
        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)));
        match next {
            Some(n) if out.len() < want => url = resolve_location(&url, &n),
            _ => break,
        }
    }
    Ok(out)
}

/// Repositories of `registry` whose name contains `term` (all when empty), at most `limit`,
/// each with its tags when `tags` is set.
pub fn search(
    registry: &str,
    term: &str,
    limit: usize,
    tags: bool,
    opts: &ClientOptions,
) -> Result<Vec<Found>> {
    let client = Client::new(registry, opts)?;
    let catalog = client.url("_catalog");
    let names = list(
        &client,
        &catalog,
        "registry:catalog:*",
        "repositories",
        usize::MAX,
    )
    .map_err(|e| match e {
        RegistryError::Status { status: 404, .. } => client.bad(
            "GET /v2/_catalog",
            "the registry has no catalog API (search needs /v2/_catalog)",
        ),
        e => e,
    })?;
    let mut out = Vec::new();
    for name in names.into_iter().filter(|n| n.contains(term)).take(limit) {
        let tags = if tags {
            let url = client.url(&format!("{name}/tags/list"));
            let scope = super::auth::repo_scope(&name, false);
            let mut t = list(&client, &url, &scope, "tags", usize::MAX)?;
            t.sort();
            t
        } else {
            vec![]
        };
        out.push(Found { name, tags });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<http://h/x?a=1>; rel="prev", <http://h/y?last=c>; rel=next"#).as_deref(),
            Some("http://h/y?last=c")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}

//! Static assets, compiled into the binary and served from memory.
//!
//! `build.rs` embeds every file of `static/` three times: raw, brotli and gzip (compressed once,
//! at build time, at the highest levels), each with a strong ETag. A request gets the encoding
//! its `Accept-Encoding` prefers, `304 Not Modified` when its `If-None-Match` names the ETag it
//! would get, and year-long immutable caching on versioned URLs: `?v=` with the current
//! [`Assets::version`] (the layout links our own files so), and `vendor/` files, whose names
//! carry their version. Anything else must revalidate (`no-cache`), which the ETag makes cheap.
//!
//! With `IHF_STATIC_DIR` set the files are read from that folder on every request instead (for
//! development: edit CSS or JS and reload, no rebuild), never cached without revalidation.
//!
//! Assets are answered by the [`serve`] middleware, in front of sessions, CSRF and `Compress`: a stylesheet
//! needs no database lookup and must not carry a `Set-Cookie`. Unknown paths go on to the app's
//! 404 page.

use std::path::{Component, Path, PathBuf};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, AcceptEncoding, ContentEncoding, Encoding, Header, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::AppState;

/// One file of `static/` as compiled in by `build.rs`.
#[derive(Debug)]
pub struct Embedded {
    /// Path below `/static/`, e.g. `vendor/htmx-2.0.11.min.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Hex SHA-256 (first 128 bits) of the raw bytes.
    pub hash: &'static str,
    pub raw: &'static [u8],
    pub br: &'static [u8],
    pub gzip: &'static [u8],
}

mod generated {
    use super::Embedded;
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Year-long caching for URLs whose content never changes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Anything else: keep it, but ask (with `If-None-Match`) before using it again.
pub const REVALIDATE: &str = "no-cache";

/// Where assets come from and the version stamped into their URLs.
#[derive(Debug, Clone)]
pub struct Assets {
    /// Changes whenever any file of `static/` does; the layout links `?v={version}`.
    pub version: String,
    /// The development override (`IHF_STATIC_DIR`); `None` serves the embedded files.
    dir: Option<PathBuf>,
}

impl Assets {
    /// The embedded assets, or the files of `dir` when the override is set.
    pub fn new(dir: Option<&Path>) -> Self {
        Self { version: generated::VERSION.to_owned(), dir: dir.map(Path::to_path_buf) }
    }

    /// The embedded file at `path` (below `/static/`).
    pub fn embedded(path: &str) -> Option<&'static Embedded> {
        generated::EMBEDDED.binary_search_by(|asset| asset.path.cmp(path)).ok().map(|i| &generated::EMBEDDED[i])
    }

    /// Every embedded file, sorted by path.
    pub fn all_embedded() -> &'static [Embedded] {
        generated::EMBEDDED
    }

    /// The raw content of `path`, from the override folder when set.
    pub async fn content(&self, path: &str) -> Option<Bytes> {
        match &self.dir {
            None => Self::embedded(path).map(|asset| Bytes::from_static(asset.raw)),
            Some(dir) => read_override(dir, path).await.map(|(raw, _)| raw),
        }
    }

    /// The answer to `GET /static/{path}`; `None` when there is no such file.
    pub async fn respond(&self, req: &HttpRequest, path: &str) -> Option<HttpResponse> {
        match &self.dir {
            None => Some(self.respond_embedded(req, Self::embedded(path)?)),
            Some(dir) => {
                let (raw, tag) = read_override(dir, path).await?;
                Some(answer(req, &tag, REVALIDATE, None, super::content_type::of(path), raw))
            }
        }
    }

    fn respond_embedded(&self, req: &HttpRequest, asset: &'static Embedded) -> HttpResponse {
        let versioned = asset.path.starts_with("vendor/") || query_v(req.query_string()) == Some(&self.version);
        let cache = if versioned { IMMUTABLE } else { REVALIDATE };
        let (suffix, encoding, body) = match negotiate(req) {
            ContentEncoding::Brotli => (".br", Some(ContentEncoding::Brotli), asset.br),
            ContentEncoding::Gzip => (".gz", Some(ContentEncoding::Gzip), asset.gzip),
            _ => ("", None, asset.raw),
        };
        let tag = format!("\"{}{suffix}\"", asset.hash);
        answer(req, &tag, cache, encoding, asset.content_type, Bytes::from_static(body))
    }
}

/// The `v` parameter of a query string.
fn query_v(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| pair.strip_prefix("v="))
}

/// The encoding to send: brotli or gzip when the client takes it (by its q-values; brotli on a
/// tie), else none.
fn negotiate(req: &HttpRequest) -> ContentEncoding {
    let Ok(accept) = AcceptEncoding::parse(req) else { return ContentEncoding::Identity };
    let supported = [Encoding::brotli(), Encoding::gzip(), Encoding::identity()];
    match accept.negotiate(supported.iter()) {
        Some(Encoding::Known(encoding)) => encoding,
        _ => ContentEncoding::Identity,
    }
}

/// Whether the client takes gzip (by its `Accept-Encoding` q-values): for the live stream.
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    let Ok(accept) = AcceptEncoding::parse(req) else { return false };
    let supported = [Encoding::gzip(), Encoding::identity()];
    accept.negotiate(supported.iter()) == Some(Encoding::gzip())
}

/// Whether `If-None-Match` names `tag` (weak comparison, as RFC 9110 asks for this header).
fn not_modified(req: &HttpRequest, tag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
        },
    )
}

fn answer(
    req: &HttpRequest,
    tag: &str,
    cache: &'static str,
    encoding: Option<ContentEncoding>,
    content_type: &'static str,
    body: Bytes,
) -> HttpResponse {
    let status = if not_modified(req, tag) { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if let Ok(tag) = HeaderValue::from_str(tag) {
        response.insert_header((header::ETAG, tag));
    }
    if status == StatusCode::NOT_MODIFIED {
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, content_type));
    if let Some(encoding) = encoding {
        response.insert_header(encoding);
    }
    response.body(body)
}

/// A file of the override folder and its ETag (modification time and length, so a request
/// costs one read and no hashing).
async fn read_override(dir: &Path, path: &str) -> Option<(Bytes, String)> {
    let file = dir.join(safe_relative(path)?);
    let read = web::block(move || -> std::io::Result<(Vec<u8>, String)> {
        let meta = std::fs::metadata(&file)?;
        if !meta.is_file() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        Ok((std::fs::read(&file)?, format!("\"{modified:x}-{:x}\"", meta.len())))
    });
    let (raw, tag) = read.await.ok()?.ok()?;
    Some((Bytes::from(raw), tag))
}

/// `path` as a relative path with plain components only (no `..`, no root): nothing outside
/// the override folder can be named.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let plain = relative.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !path.is_empty() && !path.contains('\\')).then(|| relative.to_path_buf())
}

/// Middleware: answers `GET`/`HEAD /static/…` for files that exist; everything else goes on.
pub async fn serve(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(path) = req.path().strip_prefix("/static/")
        && matches!(*req.method(), Method::GET | Method::HEAD)
        && let Some(state) = req.app_data::<web::Data<AppState>>()
        && let Some(response) = state.assets.respond(req.request(), path).await
    {
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_static_is_embedded_with_smaller_compressed_copies() {
        let css = Assets::embedded("app.css").expect("app.css is embedded");
        assert_eq!(css.content_type, "text/css; charset=utf-8");
        assert!(css.br.len() < css.raw.len() / 2 && css.gzip.len() < css.raw.len() / 2);
        assert!(Assets::embedded("vendor/htmx-2.0.11.min.js").is_some());
        assert!(Assets::embedded("vendor/VERSIONS.md").is_none(), "documentation is not served");
        assert!(Assets::embedded("nope.css").is_none());
        let paths: Vec<_> = Assets::all_embedded().iter().map(|a| a.path).collect();
        assert!(paths.windows(2).all(|w| w[0] < w[1]), "sorted for binary search: {paths:?}");
    }

    #[test]
    fn override_paths_stay_inside_the_folder() {
        assert_eq!(safe_relative("vendor/htmx.js"), Some(PathBuf::from("vendor/htmx.js")));
        for bad in ["../Cargo.toml", "/etc/passwd", "a/../../b", "", "a\\..\\b", "./x"] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_version_comes_from_the_query() {
        assert_eq!(query_v("v=abc"), Some("abc"));
        assert_eq!(query_v("x=1&v=abc"), Some("abc"));
        assert_eq!(query_v("vv=abc"), None);
        assert_eq!(query_v(""), None);
    }
}

//! The dashboard for the people who run repurchase marketing: `GET /` and
//! `GET /ui/{file}`.
//!
//! Three static files (`serving/ui/`: the page, its script and its style
//! sheet) are compiled into the binary, so nothing is fetched from the
//! network at run time and the dashboard always matches the server. The
//! script asks the JSON API for every figure with `fetch`, and draws the
//! charts as SVG (each with its numbers in a `<table>` beside it); it holds
//! no data of its own, so the files are served without a key, whatever
//! `keys_for_reads` says (see [`crate::auth`]): the API calls they make need
//! the key as any other client's.
//!
//! Every answer carries a Content-Security-Policy that allows scripts,
//! styles and requests from this origin only and no inline script, and
//! `Cache-Control: no-cache` so that a new server is never shown an old
//! script. docs/dashboard.md describes the pages.

use crate::error::ApiError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

/// The policy sent with every dashboard file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `(name, content type, bytes)` of every file under `/ui/`.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../ui/favicon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("../ui/index.html");

/// Registers `/` and `/ui/{file}` (outside the API's route table: these are
/// not API routes and `/openapi.json` does not list them).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/ui/{file}").route(web::get().to(asset)));
}

fn file(content_type: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

/// `GET /`: the page.
async fn index() -> HttpResponse {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/{file}`: a script, style sheet or icon; `404 route_not_found`
/// for any other name.
async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name.as_str())
        .map(|(_, content_type, body)| file(content_type, body))
        .ok_or_else(|| ApiError::route_not_found(req.method().as_str(), req.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads only files that exist, and holds no inline script
    /// (the policy would block it).
    #[test]
    fn the_page_names_existing_files_and_no_inline_script() {
        let page = std::str::from_utf8(INDEX).unwrap();
        for part in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let target = &part[..part.find('"').unwrap()];
            if let Some(name) = target.strip_prefix("/ui/") {
                assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{target}");
            }
        }
        let scripts = page.matches("<script").count();
        assert_eq!(scripts, page.matches("<script src=\"/ui/").count());
        for handler in [
            "onclick=",
            "onload=",
            "onsubmit=",
            "onchange=",
            "javascript:",
        ] {
            assert!(!page.contains(handler), "inline handler {handler}");
        }
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
    }
}

//! API keys: `encore-serve --api-keys keys.toml`.
//!
//! ```toml
//! keys_for_reads = false        # true: every read route needs a key too
//!
//! [[keys]]
//! name = "ops"
//! role = "admin"                # admin: every route; write: read routes and
//!                               # POST /v1/events; read: read routes only
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! Keys are stored hashed (`printf %s "$KEY" | sha256sum`), never in clear.
//! A client sends `Authorization: Bearer <key>` or `x-api-key: <key>`. The
//! server hashes what it receives and compares it with every stored hash in
//! constant time (no early exit on the first differing byte, and every key
//! is compared), so timing does not reveal how much of a key was right.
//!
//! Admin routes (everything under `/v1/admin/`: `POST /v1/admin/reload`,
//! `GET` and `PUT /v1/admin/experiments`) always need an admin key once a key
//! file is given; write routes (`POST /v1/events`) always need a write or
//! admin key (a separate `write` role, so that the shop system posting
//! events holds no key that can reload models); read routes need a key (read or admin) only with
//! `keys_for_reads = true`; `/healthz`, `/readyz` never need one. A missing or
//! unknown key answers `401 unauthorized`, a key whose role does not reach
//! the route (read on write or admin, write on admin) `403 forbidden`, both in the standard error shape. Without `--api-keys`
//! nothing is checked (the server binds to loopback by default).

use crate::error::{ApiError, Code};
use crate::state::AppState;
use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What a key may do.
/// What a key may do; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Read,
    /// Read routes and `POST /v1/events`.
    Write,
    Admin,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    role: Role,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys_for_reads: bool,
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// A loaded key file.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    keys_for_reads: bool,
    /// `(name, role, sha256 digest)`.
    keys: Vec<(String, Role, [u8; 32])>,
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equality of two digests in time independent of their contents.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Which routes are administrative: everything under `/v1/admin/`, whatever
/// the method (`GET /v1/admin/experiments` shows the running experiments).
fn is_admin_route(_method: &Method, path: &str) -> bool {
    path.starts_with("/v1/admin/")
}

/// Which routes write (log events).
fn is_write_route(method: &Method, path: &str) -> bool {
    method == Method::POST && path == "/v1/events"
}

/// Routes that never need a key (probes).
fn is_open_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

impl ApiKeys {
    /// Parses a key file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<ApiKeys, KeyFileError> {
        let invalid = |reason: String| KeyFileError::Invalid {
            path: path.to_string(),
            reason,
        };
        let file: KeyFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.keys.is_empty() {
            return Err(invalid("no [[keys]] entry".into()));
        }
        let mut keys = Vec::new();
        for (n, k) in file.keys.iter().enumerate() {
            let digest = parse_hex(&k.sha256).ok_or_else(|| {
                invalid(format!(
                    "keys[{n}] ({}): sha256 must be 64 hex digits (printf %s \"$KEY\" | sha256sum)",
                    k.name
                ))
            })?;
            keys.push((k.name.clone(), k.role, digest));
        }
        Ok(ApiKeys {
            keys_for_reads: file.keys_for_reads,
            keys,
        })
    }

    /// Reads and parses a key file.
    pub fn load(path: &Path) -> Result<ApiKeys, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The role of the key in `headers`, if any stored key matches.
    fn role_of(&self, headers: &HeaderMap) -> Option<Role> {
        let presented = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_string)
            })?;
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        // Compare with every key, whatever matched before.
        let mut role = None;
        for (_, r, stored) in &self.keys {
            if constant_time_eq(&digest, stored) {
                role = Some(role.map_or(*r, |old: Role| old.max(*r)));
            }
        }
        role
    }

    /// `Ok` if a request with these headers may use `method path`.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        if is_open_route(path) {
            return Ok(());
        }
        let admin = is_admin_route(method, path);
        let write = is_write_route(method, path);
        if !admin && !write && !self.keys_for_reads {
            return Ok(());
        }
        match self.role_of(headers) {
            None => Err(ApiError::new(
                Code::Unauthorized,
                "this route needs an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            )),
            Some(Role::Read) if admin || write => Err(ApiError::new(
                Code::Forbidden,
                "this key may read but not write events or use admin routes",
            )),
            Some(Role::Write) if admin => Err(ApiError::new(
                Code::Forbidden,
                "this key may write events but not use admin routes",
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Middleware: answers in the error shape when the state's keys refuse the
/// request (a response, not an `Err`, so that every layer above sees a
/// normal 401 or 403); passes everything through when the state has no keys.
pub(crate) async fn require_keys(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>()
        && let Some(keys) = state.api_keys()
        // The path as the router matches it (percent-encoded unreserved
        // characters decoded): `/v1/%61dmin/reload` is `/v1/admin/reload`.
        && let Err(refused) = keys.check(req.method(), req.match_info().as_str(), req.headers())
    {
        let res = refused.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn hex(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn keys(for_reads: bool) -> ApiKeys {
        let text = format!(
            "keys_for_reads = {for_reads}\n\
             [[keys]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [[keys]]\nname = \"shop\"\nrole = \"read\"\nsha256 = \"{}\"\n",
            hex("admin-secret"),
            hex("read-secret")
        );
        ApiKeys::parse(&text, "keys.toml").unwrap()
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn roles_and_routes() {
        let k = keys(false);
        let none = HeaderMap::new();
        let admin = headers("authorization", "Bearer admin-secret");
        let read = headers("x-api-key", "read-secret");
        let wrong = headers("x-api-key", "admin-secreT");
        let reload = (Method::POST, "/v1/admin/reload");
        assert_eq!(
            k.check(&reload.0, reload.1, &none).unwrap_err().code(),
            Code::Unauthorized
        );
        assert_eq!(
            k.check(&reload.0, reload.1, &wrong).unwrap_err().code(),
            Code::Unauthorized
        );
        assert_eq!(
            k.check(&reload.0, reload.1, &read).unwrap_err().code(),
            Code::Forbidden
        );
        assert!(k.check(&reload.0, reload.1, &admin).is_ok());
        // Every method under /v1/admin/ is an admin route, reads included.
        for method in [Method::GET, Method::PUT] {
            let path = "/v1/admin/experiments";
            assert_eq!(
                k.check(&method, path, &none).unwrap_err().code(),
                Code::Unauthorized
            );
            assert_eq!(
                k.check(&method, path, &read).unwrap_err().code(),
                Code::Forbidden
            );
            assert!(k.check(&method, path, &admin).is_ok());
        }
        // Reads are open unless keys_for_reads.
        assert!(k.check(&Method::GET, "/v1/kpis", &none).is_ok());
        let k = keys(true);
        assert_eq!(
            k.check(&Method::GET, "/v1/kpis", &none).unwrap_err().code(),
            Code::Unauthorized
        );
        assert!(k.check(&Method::GET, "/v1/kpis", &read).is_ok());
        assert!(k.check(&Method::GET, "/v1/kpis", &admin).is_ok());
        assert!(k.check(&Method::GET, "/healthz", &none).is_ok());
    }

    #[test]
    fn events_need_a_write_or_admin_key() {
        let text = format!(
            "[[keys]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [[keys]]\nname = \"shop\"\nrole = \"read\"\nsha256 = \"{}\"\n\
             [[keys]]\nname = \"feed\"\nrole = \"write\"\nsha256 = \"{}\"\n",
            hex("admin-secret"),
            hex("read-secret"),
            hex("write-secret")
        );
        let k = ApiKeys::parse(&text, "keys.toml").unwrap();
        let events = (Method::POST, "/v1/events");
        let code = |h: &HeaderMap, route: (&Method, &str)| {
            k.check(route.0, route.1, h).err().map(|e| e.code())
        };
        let none = HeaderMap::new();
        let read = headers("x-api-key", "read-secret");
        let write = headers("x-api-key", "write-secret");
        let admin = headers("x-api-key", "admin-secret");
        assert_eq!(code(&none, (&events.0, events.1)), Some(Code::Unauthorized));
        assert_eq!(code(&read, (&events.0, events.1)), Some(Code::Forbidden));
        assert_eq!(code(&write, (&events.0, events.1)), None);
        assert_eq!(code(&admin, (&events.0, events.1)), None);
        let reload = (&Method::POST, "/v1/admin/reload");
        assert_eq!(code(&write, reload), Some(Code::Forbidden));
        assert_eq!(code(&admin, reload), None);
        // Reads stay open without keys_for_reads, whatever the key.
        assert_eq!(code(&none, (&Method::GET, "/v1/kpis")), None);
        assert_eq!(code(&write, (&Method::GET, "/v1/kpis")), None);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = ApiKeys::parse(
            "[[keys]]\nname = \"x\"\nrole = \"read\"\nsha256 = \"abc\"\n",
            "k.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("k.toml") && e.contains("64 hex"), "{e}");
        let e = ApiKeys::parse("keys_for_reads = true\n", "k.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no [[keys]]"), "{e}");
        let e = ApiKeys::parse(
            "[[keys]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"\"\n",
            "k.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("root"), "{e}");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }
}

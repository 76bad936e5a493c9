//! API keys and the cross-site guard of the routes that change state.
//!
//! `encore-serve --api-keys keys.toml`:
//!
//! ```toml
//! keys_for_reads = "customer_data"  # which read routes need a key: "customer_data"
//!                                   # (the default), "all" or "none"
//!
//! [[keys]]
//! name = "ops"
//! role = "admin"                # admin: every route; write: read routes and
//!                               # POST /v1/events; read: read routes only
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! Keys are stored hashed (`printf %s "$KEY" | sha256sum`), never in clear.
//! A client sends `Authorization: Bearer <key>` (the scheme in any case) or
//! `x-api-key: <key>`. The server hashes what it receives and compares it
//! with every stored hash in constant time (no early exit on the first
//! differing byte, and every key is compared), so timing does not reveal how
//! much of a key was right.
//!
//! Once a key file is given: admin routes (everything under `/v1/admin/`)
//! need an admin key; `POST /v1/events` a write or admin key (a separate
//! `write` role, so that the shop system posting events holds no key that can
//! reload models); the routes that answer customer data (everything under
//! `/v1/customers/` and `/v1/audiences/`, and `/v1/kpis`) a key of any role
//! unless `keys_for_reads = "none"`; the other read routes (items, baskets,
//! the model's manifest, metrics) a key only with `keys_for_reads = "all"`;
//! `/healthz`, `/readyz` and the dashboard's files (`/`, `/ui/...`: no data,
//! the dashboard asks for a key and sends it with its API calls) never. The booleans of earlier versions still
//! parse: `true` is `"all"`, `false` is `"customer_data"`. A missing or
//! unknown key answers `401 unauthorized`, a key whose role does not reach
//! the route `403 forbidden`, both in the standard error shape.
//!
//! The file is read again on `SIGHUP` and by `POST /v1/admin/reload`
//! ([`AppState::reload_api_keys`](crate::state::AppState::reload_api_keys)); a file that does not parse leaves the
//! keys in use unchanged.
//!
//! Whatever the keys, a request that changes state (any method but `GET`,
//! `HEAD` and `OPTIONS` on an admin route or `/v1/events`) must say
//! `Content-Type: application/json` (`415 unsupported_media_type`), which a
//! web page cannot send to another site without the browser asking first,
//! and one coming from a web page of another origin (an `Origin` header, or
//! `Sec-Fetch-Site: cross-site`) is refused with `403 cross_origin` unless
//! its origin is in the `cors_origins` allow-list. That list is also the
//! only way a browser on another origin may read answers (CORS): without it
//! no `Access-Control-Allow-Origin` header is ever sent and preflights answer
//! `405`. Without `--api-keys` nothing else is checked, and `encore-serve`
//! refuses to listen beyond loopback unless told `--insecure-no-auth`.

use crate::error::{ApiError, Code};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What a key may do; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read routes.
    Read,
    /// Read routes and `POST /v1/events`.
    Write,
    /// Every route.
    Admin,
}

/// Which read routes need a key (`keys_for_reads` of the key file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeysForReads {
    /// The routes that answer customer data: profiles, next purchases,
    /// buy-again lists, a customer's recommendations, audiences and KPIs.
    #[default]
    CustomerData,
    /// Every read route but the probes.
    All,
    /// No read route (a gateway in front authenticates readers).
    None,
}

impl<'de> Deserialize<'de> for KeysForReads {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = KeysForReads;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"customer_data\", \"all\" or \"none\"")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<KeysForReads, E> {
                Ok(if v {
                    KeysForReads::All
                } else {
                    KeysForReads::CustomerData
                })
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeysForReads, E> {
                match v {
                    "customer_data" => Ok(KeysForReads::CustomerData),
                    "all" => Ok(KeysForReads::All),
                    "none" => Ok(KeysForReads::None),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
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
    keys_for_reads: KeysForReads,
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// A loaded key file.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    keys_for_reads: KeysForReads,
    /// `(name, role, sha256 digest)`.
    keys: Vec<(String, Role, [u8; 32])>,
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
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

/// What a route is, for access control. Decided on the path as the router
/// matches it, so that a route added under a guarded prefix is guarded too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteClass {
    /// `/healthz`, `/readyz`, and the dashboard's static files (`/` and
    /// `/ui/...`, which hold no data): never a key.
    Probe,
    /// Read routes without customer data.
    Catalog,
    /// Read routes that answer customer data.
    CustomerData,
    /// `POST /v1/events`.
    Write,
    /// Everything under `/v1/admin/`, whatever the method.
    Admin,
}

fn classify(method: &Method, path: &str) -> RouteClass {
    if matches!(path, "/healthz" | "/readyz" | "/") || path.starts_with("/ui/") {
        RouteClass::Probe
    } else if path.starts_with("/v1/admin/") {
        RouteClass::Admin
    } else if path == "/v1/events" && method != Method::GET && method != Method::HEAD {
        RouteClass::Write
    } else if path.starts_with("/v1/customers/")
        || path.starts_with("/v1/audiences/")
        || path == "/v1/kpis"
    {
        RouteClass::CustomerData
    } else {
        RouteClass::Catalog
    }
}

/// The key a request presents: `x-api-key`, else an `Authorization` header
/// with the `Bearer` scheme in any case.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
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
            cause: source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// How many keys the file holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key file holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The role of the key in `headers`, if any stored key matches.
    fn role_of(&self, headers: &HeaderMap) -> Option<Role> {
        let presented = presented_key(headers)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
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
        let needed = match classify(method, path) {
            RouteClass::Probe => None,
            RouteClass::Catalog => (self.keys_for_reads == KeysForReads::All).then_some(Role::Read),
            RouteClass::CustomerData => {
                (self.keys_for_reads != KeysForReads::None).then_some(Role::Read)
            }
            RouteClass::Write => Some(Role::Write),
            RouteClass::Admin => Some(Role::Admin),
        };
        let Some(needed) = needed else {
            return Ok(());
        };
        match self.role_of(headers) {
            None => Err(ApiError::new(
                Code::Unauthorized,
                "this route needs an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            )),
            Some(role) if role < needed => Err(ApiError::new(
                Code::Forbidden,
                match role {
                    Role::Read => "this key may read but not write events or use admin routes",
                    _ => "this key may write events but not use admin routes",
                },
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Whether `method path` changes state: admin and event routes, any method
/// but `GET`, `HEAD` and `OPTIONS`.
fn changes_state(method: &Method, path: &str) -> bool {
    matches!(
        classify(method, path),
        RouteClass::Admin | RouteClass::Write
    ) && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request's `Origin`, if it names one (`null` names none).
fn origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Ok` unless the request would change state from a web page of an origin
/// that `allowed` does not list, or without a JSON content type (see the
/// module documentation).
pub fn check_cross_site(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    allowed: &[String],
) -> Result<(), ApiError> {
    if !changes_state(method, path) {
        return Ok(());
    }
    let listed = origin(headers).is_some_and(|o| allowed.iter().any(|a| a == o));
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if (origin(headers).is_some() || cross_site) && !listed {
        return Err(ApiError::new(
            Code::CrossOrigin,
            "admin and event routes refuse requests from web pages of other origins \
             (an Origin header not in cors_origins)",
        ));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<actix_web::mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == actix_web::mime::APPLICATION
                && (m.subtype() == actix_web::mime::JSON
                    || m.suffix() == Some(actix_web::mime::JSON))
        });
    if !json {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "admin and event routes need Content-Type: application/json, even without a body",
        ));
    }
    Ok(())
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
        // Catalog reads are open unless keys_for_reads = "all"; customer
        // data needs a key by default.
        assert!(k.check(&Method::GET, "/v1/items/i1/similar", &none).is_ok());
        assert!(k.check(&Method::POST, "/v1/recommendations", &none).is_ok());
        assert!(k.check(&Method::GET, "/v1/model", &none).is_ok());
        for path in [
            "/v1/kpis",
            "/v1/audiences/reactivation",
            "/v1/customers/c1/profile",
            "/v1/customers/c1/orders",
            "/v1/customers/c1/next-purchase",
            "/v1/customers/c1/buy-again",
            "/v1/customers/c1/recommendations",
        ] {
            assert_eq!(
                k.check(&Method::GET, path, &none).unwrap_err().code(),
                Code::Unauthorized,
                "{path}"
            );
            assert!(k.check(&Method::GET, path, &read).is_ok(), "{path}");
        }
        let k = keys(true);
        assert_eq!(
            k.check(&Method::GET, "/v1/items/i1/similar", &none)
                .unwrap_err()
                .code(),
            Code::Unauthorized
        );
        assert_eq!(
            k.check(&Method::GET, "/v1/kpis", &none).unwrap_err().code(),
            Code::Unauthorized
        );
        assert!(k.check(&Method::GET, "/v1/kpis", &read).is_ok());
        assert!(k.check(&Method::GET, "/v1/kpis", &admin).is_ok());
        assert!(k.check(&Method::GET, "/healthz", &none).is_ok());
        // The dashboard's files hold no data; the API calls they make do.
        for path in ["/", "/ui/app.js", "/ui/style.css"] {
            assert!(k.check(&Method::GET, path, &none).is_ok(), "{path}");
        }
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
        // Catalog reads stay open without keys_for_reads = "all", whatever
        // the key; every role reads customer data.
        assert_eq!(code(&none, (&Method::GET, "/v1/items/i/similar")), None);
        assert_eq!(code(&write, (&Method::GET, "/v1/kpis")), None);
        assert_eq!(
            code(&none, (&Method::GET, "/v1/kpis")),
            Some(Code::Unauthorized)
        );
    }

    #[test]
    fn keys_for_reads_takes_names_and_the_old_booleans() {
        let with = |setting: &str| {
            let text = format!(
                "keys_for_reads = {setting}
[[keys]]
name = \"ops\"
role = \"admin\"
sha256 = \"{}\"
",
                hex("k")
            );
            ApiKeys::parse(&text, "keys.toml").map(|k| k.keys_for_reads)
        };
        assert_eq!(with("true").unwrap(), KeysForReads::All);
        assert_eq!(with("false").unwrap(), KeysForReads::CustomerData);
        assert_eq!(with("\"all\"").unwrap(), KeysForReads::All);
        assert_eq!(with("\"none\"").unwrap(), KeysForReads::None);
        assert_eq!(
            with("\"customer_data\"").unwrap(),
            KeysForReads::CustomerData
        );
        let e = with("\"some\"").unwrap_err().to_string();
        assert!(
            e.contains("customer_data") && e.contains("keys.toml"),
            "{e}"
        );
        // Unset: customer data needs a key.
        let text = format!(
            "[[keys]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
            hex("k")
        );
        let k = ApiKeys::parse(&text, "keys.toml").unwrap();
        assert_eq!(k.keys_for_reads, KeysForReads::CustomerData);
        let none = ApiKeys::parse(&format!("keys_for_reads = \"none\"\n{text}"), "k").unwrap();
        assert!(
            none.check(&Method::GET, "/v1/kpis", &HeaderMap::new())
                .is_ok()
        );
    }

    #[test]
    fn bearer_is_case_insensitive() {
        let k = keys(false);
        let reload = (Method::POST, "/v1/admin/reload");
        for value in [
            "Bearer admin-secret",
            "bearer admin-secret",
            "BEARER admin-secret",
            "bEaReR   admin-secret ",
        ] {
            let h = headers("authorization", value);
            assert!(k.check(&reload.0, reload.1, &h).is_ok(), "{value}");
        }
        for value in ["Basic admin-secret", "Beareradmin-secret", "admin-secret"] {
            let h = headers("authorization", value);
            assert_eq!(
                k.check(&reload.0, reload.1, &h).unwrap_err().code(),
                Code::Unauthorized,
                "{value}"
            );
        }
    }

    #[test]
    fn state_changes_need_json_and_an_allowed_origin() {
        let allowed = vec!["https://shop.example".to_string()];
        let check = |method: Method, path: &str, pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.insert(
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            check_cross_site(&method, path, &h, &allowed)
                .err()
                .map(|e| e.code())
        };
        let json = ("content-type", "application/json");
        for (method, path) in [
            (Method::POST, "/v1/admin/reload"),
            (Method::PUT, "/v1/admin/experiments"),
            (Method::POST, "/v1/events"),
        ] {
            assert_eq!(check(method.clone(), path, &[json]), None);
            assert_eq!(
                check(
                    method.clone(),
                    path,
                    &[("content-type", "application/merge+json")]
                ),
                None
            );
            for simple in [
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ] {
                assert_eq!(
                    check(method.clone(), path, &[("content-type", simple)]),
                    Some(Code::UnsupportedMediaType),
                    "{path} {simple}"
                );
            }
            assert_eq!(
                check(method.clone(), path, &[]),
                Some(Code::UnsupportedMediaType)
            );
            assert_eq!(
                check(
                    method.clone(),
                    path,
                    &[json, ("origin", "https://evil.example")]
                ),
                Some(Code::CrossOrigin)
            );
            assert_eq!(
                check(method.clone(), path, &[json, ("origin", "null")]),
                Some(Code::CrossOrigin)
            );
            assert_eq!(
                check(
                    method.clone(),
                    path,
                    &[json, ("sec-fetch-site", "cross-site")]
                ),
                Some(Code::CrossOrigin)
            );
            assert_eq!(
                check(
                    method.clone(),
                    path,
                    &[json, ("origin", "https://shop.example")]
                ),
                None
            );
        }
        // Reads are not state changes.
        assert_eq!(
            check(
                Method::GET,
                "/v1/admin/experiments",
                &[("origin", "https://evil.example")]
            ),
            None
        );
        assert_eq!(check(Method::POST, "/v1/recommendations", &[]), None);
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

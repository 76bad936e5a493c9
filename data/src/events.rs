//! Feedback events: purchases, exposures and clicks reported after training.
//!
//! The server accepts them in batches (`POST /v1/events`), appends them to an
//! append-only log of JSON-lines files, and the next training run merges the
//! purchases into its input; experiment reports read exposures and purchases.
//! This module holds the one schema all of them share, its strict validation,
//! and the reader of a log directory.
//!
//! An event as posted, and as stored (one JSON object per line):
//!
//! ```json
//! {"id": "evt-1", "type": "purchase", "time": "2026-11-30T10:00:00Z",
//!  "order_id": "o-9", "customer": "c-1", "item": "tea", "quantity": 2, "price": 3.5}
//! {"id": "evt-2", "type": "exposure", "time": "2026-11-30T10:00:01Z",
//!  "customer": "c-1", "list": "for_you", "items": ["tea", "mug"],
//!  "experiment": "home-list", "variant": "treatment", "request_id": "r-17"}
//! {"id": "evt-3", "type": "click", "time": "2026-11-30T10:00:02Z",
//!  "customer": "c-1", "item": "mug", "list": "for_you", "request_id": "r-17"}
//! ```
//!
//! `id` is the idempotency key: a retried batch carries the same ids and is not
//! counted twice. Stored lines add `received_at`, the server's clock when the
//! batch was accepted.
//!
//! # Stored records: a length and a CRC-32C on every line
//! The log stores each event as one line that is still a JSON object, with
//! a frame around the event's own JSON (its *payload*):
//!
//! ```text
//! {"frame":"0000009c 5d1b2e7a","event":{"id":"evt-1","type":"purchase",...}}
//! ```
//!
//! `frame` is the payload's length in bytes and its CRC-32C (Castagnoli),
//! each as eight lower-case hex digits; the payload is the bytes between
//! `"event":` and the closing `}`. A reader checks both before it parses the
//! payload ([`decode_record`]), so a line damaged on disk (a flipped bit,
//! zeros, a block of another file) is told apart from a valid one and
//! skipped, counted and reported ([`EventReadReport::damaged`]) instead of
//! stopping the read. Lines without a frame (logs written before frames)
//! are read as plain JSON events: old logs stay readable. `jq .event` reads
//! a framed file.
//!
//! ```
//! use encore_data::events::{parse_event, EventKind};
//!
//! let e = parse_event(br#"{"id":"e1","type":"click","time":"2026-11-30T10:00:00Z",
//!                          "customer":"c1","item":"tea"}"#).unwrap();
//! assert!(matches!(e.kind, EventKind::Click { .. }));
//!
//! let err = parse_event(br#"{"id":"e2","type":"purchase","time":"2026-11-30",
//!                            "order_id":"o","customer":"c","item":"i","quantity":-1}"#)
//!     .unwrap_err();
//! assert_eq!(err.field, "quantity");
//! ```

use crate::timestamp::{format_timestamp, parse_timestamp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The longest id (event, order, customer, item, list, variant, request), in bytes.
pub const MAX_EVENT_ID_BYTES: usize = 256;

/// The most items one exposure may list.
pub const MAX_EXPOSED_ITEMS: usize = 1000;

/// The earliest event time accepted: 1970-01-01T00:00:00Z.
pub const MIN_EVENT_TIME: i64 = 0;

/// The latest event time accepted: 9999-12-31T23:59:59Z (later ones could not
/// be written back as RFC 3339, so a stored log would not read back).
pub const MAX_EVENT_TIME: i64 = 253_402_300_799;

/// The largest quantity and unit price accepted (training keeps them as `f32`).
pub const MAX_EVENT_AMOUNT: f64 = 1e9;

/// The smallest positive quantity accepted.
pub const MIN_EVENT_QUANTITY: f64 = 1e-6;

/// One validated event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Idempotency key, unique per event.
    pub id: String,
    /// When the event happened, seconds since the Unix epoch (UTC).
    pub time: i64,
    /// When the server accepted it (stored events only).
    pub received_at: Option<i64>,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A purchase line: `quantity` units of `item` in order `order_id`.
    Purchase {
        order_id: String,
        customer: String,
        item: String,
        /// Positive units bought (returns are not events).
        quantity: f64,
        /// Unit price, when known.
        price: Option<f64>,
    },
    /// A list shown to a customer.
    Exposure {
        customer: String,
        /// Which list: `similar`, `for_you`, `buy_again`, `reactivation`, ...
        list: String,
        items: Vec<String>,
        experiment: Option<String>,
        variant: Option<String>,
        request_id: Option<String>,
    },
    /// A click on one item of a list.
    Click {
        customer: String,
        item: String,
        list: Option<String>,
        request_id: Option<String>,
    },
}

impl EventKind {
    /// The `type` name of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Purchase { .. } => "purchase",
            EventKind::Exposure { .. } => "exposure",
            EventKind::Click { .. } => "click",
        }
    }

    /// The customer the event is about.
    pub fn customer(&self) -> &str {
        match self {
            EventKind::Purchase { customer, .. }
            | EventKind::Exposure { customer, .. }
            | EventKind::Click { customer, .. } => customer,
        }
    }
}

/// Why an event was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    /// The offending field (`""` when the event is not a JSON object at all).
    pub field: String,
    pub message: String,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for EventError {}

fn err(field: &str, message: impl Into<String>) -> EventError {
    EventError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Parses and validates one event from JSON bytes.
pub fn parse_event(bytes: &[u8]) -> Result<Event, EventError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| err("", e.to_string()))?;
    event_from_value(value)
}

/// Validates one event given as a JSON value (an element of a posted batch).
///
/// Strict: unknown fields, missing required fields, wrong types, empty or
/// overlong ids, non-finite or non-positive quantities, negative prices and
/// unparsable times are all refused, naming the field.
pub fn event_from_value(value: Value) -> Result<Event, EventError> {
    let Value::Object(mut obj) = value else {
        return Err(err("", "an event must be a JSON object"));
    };
    let id = take_id(&mut obj, "id")?;
    let type_name = take_string(&mut obj, "type")?;
    let time = take_time(&mut obj, "time")?;
    let received_at = match obj.remove("received_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(time_of(v, "received_at")?),
    };
    let kind = match type_name.as_str() {
        "purchase" => {
            let order_id = take_id(&mut obj, "order_id")?;
            let customer = take_id(&mut obj, "customer")?;
            let item = take_id(&mut obj, "item")?;
            let quantity = match take_number(&mut obj, "quantity")? {
                None => 1.0,
                Some(q) if (MIN_EVENT_QUANTITY..=MAX_EVENT_AMOUNT).contains(&q) => q,
                Some(q) if q > 0.0 => {
                    return Err(err(
                        "quantity",
                        format!("must be {MIN_EVENT_QUANTITY} to {MAX_EVENT_AMOUNT}, not {q}"),
                    ));
                }
                Some(q) => return Err(err("quantity", format!("must be positive, not {q}"))),
            };
            let price = match take_number(&mut obj, "price")? {
                Some(p) if p < 0.0 => {
                    return Err(err("price", format!("must not be negative, not {p}")));
                }
                Some(p) if p > MAX_EVENT_AMOUNT => {
                    return Err(err(
                        "price",
                        format!("must be at most {MAX_EVENT_AMOUNT}, not {p}"),
                    ));
                }
                p => p,
            };
            EventKind::Purchase {
                order_id,
                customer,
                item,
                quantity,
                price,
            }
        }
        "exposure" => {
            let customer = take_id(&mut obj, "customer")?;
            let list = take_id(&mut obj, "list")?;
            let items = match obj.remove("items") {
                None => return Err(err("items", "is required")),
                Some(Value::Array(items)) => {
                    if items.len() > MAX_EXPOSED_ITEMS {
                        return Err(err(
                            "items",
                            format!("lists {} items; at most {MAX_EXPOSED_ITEMS}", items.len()),
                        ));
                    }
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| id_of(v, &format!("items[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?
                }
                Some(_) => return Err(err("items", "must be an array of item ids")),
            };
            EventKind::Exposure {
                customer,
                list,
                items,
                experiment: take_opt_id(&mut obj, "experiment")?,
                variant: take_opt_id(&mut obj, "variant")?,
                request_id: take_opt_id(&mut obj, "request_id")?,
            }
        }
        "click" => EventKind::Click {
            customer: take_id(&mut obj, "customer")?,
            item: take_id(&mut obj, "item")?,
            list: take_opt_id(&mut obj, "list")?,
            request_id: take_opt_id(&mut obj, "request_id")?,
        },
        other => {
            return Err(err(
                "type",
                format!("unknown event type {other:?}; expected purchase, exposure or click"),
            ));
        }
    };
    if let Some(key) = obj.keys().next() {
        return Err(err(key, format!("unknown field for a {type_name} event")));
    }
    Ok(Event {
        id,
        time,
        received_at,
        kind,
    })
}

fn take_string(obj: &mut Map<String, Value>, field: &str) -> Result<String, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Err(err(field, "is required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(err(field, "must be a string")),
    }
}

fn id_of(value: Value, field: &str) -> Result<String, EventError> {
    match value {
        Value::String(s) => check_id(s, field),
        // Numeric ids are common in exports; keep their JSON spelling.
        Value::Number(n) => check_id(n.to_string(), field),
        _ => Err(err(field, "must be a string")),
    }
}

fn check_id(s: String, field: &str) -> Result<String, EventError> {
    if s.is_empty() {
        Err(err(field, "must not be empty"))
    } else if s.len() > MAX_EVENT_ID_BYTES {
        Err(err(
            field,
            format!("is {} bytes long; at most {MAX_EVENT_ID_BYTES}", s.len()),
        ))
    } else if s.chars().any(char::is_control) {
        Err(err(field, "must not contain control characters"))
    } else {
        Ok(s)
    }
}

fn take_id(obj: &mut Map<String, Value>, field: &str) -> Result<String, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Err(err(field, "is required")),
        Some(v) => id_of(v, field),
    }
}

fn take_opt_id(obj: &mut Map<String, Value>, field: &str) -> Result<Option<String>, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => id_of(v, field).map(Some),
    }
}

fn take_number(obj: &mut Map<String, Value>, field: &str) -> Result<Option<f64>, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(err(field, "must be a finite number")),
        },
        Some(_) => Err(err(field, "must be a number")),
    }
}

fn time_of(value: Value, field: &str) -> Result<i64, EventError> {
    let t = time_value(value, field)?;
    if (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&t) {
        Ok(t)
    } else {
        Err(err(
            field,
            format!(
                "{t} s since the epoch is outside 1970-01-01 .. 9999-12-31 \
                 (milliseconds instead of seconds?)"
            ),
        ))
    }
}

fn time_value(value: Value, field: &str) -> Result<i64, EventError> {
    match value {
        Value::String(s) => parse_timestamp(&s).ok_or_else(|| {
            err(
                field,
                format!("{s:?} is not a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS` or a date)"),
            )
        }),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| err(field, "must be whole seconds since the Unix epoch")),
        _ => Err(err(
            field,
            "must be a timestamp string or seconds since the epoch",
        )),
    }
}

fn take_time(obj: &mut Map<String, Value>, field: &str) -> Result<i64, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Err(err(field, "is required")),
        Some(v) => time_of(v, field),
    }
}

/// The JSON object of an event as stored: the posted fields, times in
/// RFC 3339, optional fields left out when absent.
pub fn event_to_value(event: &Event) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), event.id.clone().into());
    obj.insert("type".into(), event.kind.type_name().into());
    obj.insert("time".into(), format_timestamp(event.time).into());
    if let Some(t) = event.received_at {
        obj.insert("received_at".into(), format_timestamp(t).into());
    }
    let fields = match &event.kind {
        EventKind::Purchase {
            order_id,
            customer,
            item,
            quantity,
            price,
        } => serde_json::json!({
            "order_id": order_id, "customer": customer, "item": item,
            "quantity": quantity, "price": price,
        }),
        EventKind::Exposure {
            customer,
            list,
            items,
            experiment,
            variant,
            request_id,
        } => serde_json::json!({
            "customer": customer, "list": list, "items": items,
            "experiment": experiment, "variant": variant, "request_id": request_id,
        }),
        EventKind::Click {
            customer,
            item,
            list,
            request_id,
        } => serde_json::json!({
            "customer": customer, "item": item, "list": list, "request_id": request_id,
        }),
    };
    // The optional fields (`None`, hence null) are left out.
    if let Value::Object(fields) = fields {
        obj.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
    }
    Value::Object(obj)
}

/// One JSON line (without the newline) of an event as stored.
pub fn event_to_line(event: &Event) -> String {
    event_to_value(event).to_string()
}

/// Errors reading or writing an event log.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("cannot read the event log {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// An append could not be made durable (a full disk, an I/O error): none
    /// of its batches is stored, and the log was cut back to its last
    /// durable record. A later append probes the disk and resumes once it
    /// works again.
    #[error("cannot write the event log {path}: {cause}")]
    WriteFailed {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Another process holds the log directory's lock (`DIR/.lock`).
    #[error("the event log {path} is in use by another process (its lock is held)")]
    Locked { path: PathBuf },
    /// The checkpoint of a compacted log is damaged (see
    /// [`crate::event_log`], retention).
    #[error("the event log checkpoint {path} is damaged: {reason}")]
    DamagedCheckpoint { path: PathBuf, reason: String },
    /// An operation on the log directory refused to run, and why (nothing
    /// was changed).
    #[error("{path}: {reason}")]
    Refused { path: PathBuf, reason: String },
}

/// What the frame of a stored line (see the [module docs](self)) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A framed line whose length and CRC-32C match: the event's JSON.
    Framed(&'a [u8]),
    /// A line without a frame, as logs written before frames hold: the
    /// whole line is the event's JSON, unchecked.
    Unframed(&'a [u8]),
}

impl<'a> Record<'a> {
    /// The event's JSON.
    pub fn payload(self) -> &'a [u8] {
        match self {
            Record::Framed(p) | Record::Unframed(p) => p,
        }
    }
}

/// Start of a framed line, up to the frame's digits.
const FRAME_OPEN: &[u8] = b"{\"frame\":\"";
/// Between the frame's digits and the payload.
const FRAME_EVENT: &[u8] = b"\",\"event\":";
/// Length of everything before the payload: the open, `LLLLLLLL CCCCCCCC`, the key.
const FRAME_HEAD: usize = FRAME_OPEN.len() + 17 + FRAME_EVENT.len();

/// The stored line of an event (without its newline): its JSON in a frame
/// with the JSON's length and CRC-32C (module docs).
pub fn encode_record(event: &Event) -> Vec<u8> {
    let payload = event_to_line(event);
    frame_payload(payload.as_bytes())
}

/// `payload` (one line of JSON, no newline) in a frame.
pub fn frame_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEAD + payload.len() + 1);
    out.extend_from_slice(FRAME_OPEN);
    out.extend_from_slice(
        format!("{:08x} {:08x}", payload.len(), crc32c::crc32c(payload)).as_bytes(),
    );
    out.extend_from_slice(FRAME_EVENT);
    out.extend_from_slice(payload);
    out.push(b'}');
    out
}

/// Checks the frame of a stored line (without its newline) and returns the
/// event's JSON, or why the line is damaged.
pub fn decode_record(line: &[u8]) -> Result<Record<'_>, String> {
    let Some(rest) = line.strip_prefix(FRAME_OPEN) else {
        // A line that does not even start like a JSON object cannot be an
        // unframed event: say so rather than what the JSON parser would.
        return match line.first() {
            Some(b'{') => Ok(Record::Unframed(line)),
            _ => Err("neither a framed record nor a JSON object".into()),
        };
    };
    let hex = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .filter(|s| s.len() == 8 && s.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|s| u32::from_str_radix(s, 16).ok())
    };
    let (Some(len), Some(crc)) = (rest.get(..8).and_then(hex), rest.get(9..17).and_then(hex))
    else {
        return Err("the frame's length or checksum is not 8 hex digits".into());
    };
    if rest.get(8) != Some(&b' ') || rest.get(17..17 + FRAME_EVENT.len()) != Some(FRAME_EVENT) {
        return Err("the frame is malformed".into());
    }
    let body = &line[FRAME_HEAD..];
    if body.len() != len as usize + 1 || body.last() != Some(&b'}') {
        return Err(format!(
            "the frame says {len} bytes, the line holds {}",
            body.len().saturating_sub(1)
        ));
    }
    let payload = &body[..len as usize];
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Err(format!(
            "checksum mismatch: the frame says {crc:08x}, the bytes give {actual:08x}"
        ));
    }
    Ok(Record::Framed(payload))
}

/// One damaged line a reader skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start in the file.
    pub offset: u64,
    /// Bytes of the line, its newline included.
    pub len: u64,
    /// Why it was refused: a frame that does not match, or the event's own
    /// validation error.
    pub reason: String,
}

impl fmt::Display for DamagedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} (bytes {}..{}): {}",
            self.path.display(),
            self.line,
            self.offset,
            self.offset + self.len,
            self.reason
        )
    }
}

/// What [`read_event_dir`] found besides the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventReadReport {
    /// The log files read, in order.
    pub files: Vec<PathBuf>,
    /// Lines read (complete ones).
    pub lines: u64,
    /// Events dropped because an earlier line had the same id.
    pub duplicates: u64,
    /// Files whose last line had no newline: a write cut short by a crash,
    /// never acknowledged, so skipped. One entry per such file.
    pub torn_tails: Vec<PathBuf>,
    /// Bytes read of each file of `files` (complete lines only): where this
    /// read stopped, for [`for_each_event_again`].
    pub bytes: Vec<u64>,
    /// Complete lines skipped because their frame or their event is invalid:
    /// damage on disk, never a write the server acknowledged as such.
    pub damaged: Vec<DamagedRecord>,
    /// For each file of `files`: the end of its last valid line (what is
    /// after it is damaged or torn).
    pub valid_end: Vec<u64>,
}

/// Whether `name` is an event log file: `events-*.jsonl`.
pub fn is_event_file(name: &str) -> bool {
    name.starts_with("events-") && name.ends_with(".jsonl")
}

/// Reads every `events-*.jsonl` file of `dir` in name order, validating each
/// line and keeping the first event of each id: [`for_each_event`],
/// collected.
pub fn read_event_dir(dir: &Path) -> Result<(Vec<Event>, EventReadReport), EventLogError> {
    let mut events = Vec::new();
    let report = for_each_event(dir, |e| events.push(e))?;
    Ok((events, report))
}

/// Streams every `events-*.jsonl` file of `dir` in name order, validating
/// each line and handing the first event of each id to `f`, in file and line
/// order. Memory: a 16-byte fingerprint of every id, to know the first of
/// each (about 20 to 40 bytes an id with the hash table's overhead), never
/// the events themselves.
///
/// A last line without its newline is a write the crash cut short (the server
/// acknowledges a batch only after its lines and newlines are on disk): it is
/// skipped and reported in [`EventReadReport::torn_tails`]. A complete line
/// whose frame or event is invalid is damage: it is skipped and reported in
/// [`EventReadReport::damaged`] (file, line, offset, reason), and the read
/// goes on. Only a file that cannot be read at all is an error.
pub fn for_each_event(
    dir: &Path,
    mut f: impl FnMut(Event),
) -> Result<EventReadReport, EventLogError> {
    scan_event_dir(dir, |event, first| {
        if first {
            f(event)
        }
    })
}

/// Streams the events an earlier read handed over, again: the files of
/// `previous` (a report of [`for_each_event`]), each up to the bytes that read
/// reached, first event of each id only. Lines the server appended since are
/// not read, so two passes over a live log see the same events. A file that
/// vanished or shrank since is an error naming it.
///
/// With `only = Some(type)` (`"purchase"`, `"exposure"` or `"click"`), only
/// events of that type reach `f`; the other lines are read for their id
/// alone (so the first event of each id is the same as in a full read),
/// which costs a fraction of validating them.
pub fn for_each_event_again(
    previous: &EventReadReport,
    only: Option<&str>,
    mut f: impl FnMut(Event),
) -> Result<EventReadReport, EventLogError> {
    let files = previous
        .files
        .iter()
        .zip(&previous.bytes)
        .map(|(p, &b)| (p.clone(), Some(b)))
        .collect();
    scan_files(files, only, |_, event, first| {
        if first {
            f(event)
        }
    })
}

/// [`for_each_event`] over the given files only, in the given order (the
/// compacted files of a log, for one).
pub fn for_each_event_in(
    files: &[PathBuf],
    mut f: impl FnMut(Event),
) -> Result<EventReadReport, EventLogError> {
    let files = files.iter().map(|p| (p.clone(), None)).collect();
    scan_files(files, None, |_, event, first| {
        if first {
            f(event)
        }
    })
}

/// The id and type of a stored line, read without validating the rest.
#[derive(serde::Deserialize)]
struct Head {
    id: Value,
    #[serde(rename = "type")]
    kind: Value,
}

/// The id a line of another type than `only` has, when it can be read
/// without validating the line (as [`parse_event`] spells it); `None` when
/// the line is of type `only` or needs the full parse.
fn other_type_id(line: &[u8], only: &str) -> Option<String> {
    let head: Head = serde_json::from_slice(line).ok()?;
    match head.kind {
        Value::String(kind) if kind != only => {}
        _ => return None,
    }
    match head.id {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The 128-bit fingerprint of an event id (two `u64`s: 8-byte aligned, so
/// an entry of a map keyed by it takes 24 bytes with an `i64`, not 32).
pub(crate) fn fingerprint(id: &str) -> [u64; 2] {
    let digest = Sha256::digest(id.as_bytes());
    [
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(digest[8..16].try_into().expect("8 bytes")),
    ]
}

/// The error of an I/O failure on `path`, for `map_err`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EventLogError {
    let path = path.to_path_buf();
    move |cause| EventLogError::Io { path, cause }
}

/// [`for_each_event`] over every valid line, duplicates included: `each`
/// gets the event and whether it is the first of its id.
pub(crate) fn scan_event_dir(
    dir: &Path,
    each: impl FnMut(Event, bool),
) -> Result<EventReadReport, EventLogError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if entry.file_name().to_str().is_some_and(is_event_file) {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut each = each;
    scan_files(
        files.into_iter().map(|p| (p, None)).collect(),
        None,
        |_, event, first| each(event, first),
    )
}

/// [`scan_event_dir`] over `files` in the given order; `each` also gets the
/// index of the file in `files`.
pub(crate) fn scan_paths(
    files: &[PathBuf],
    each: impl FnMut(usize, Event, bool),
) -> Result<EventReadReport, EventLogError> {
    scan_files(
        files.iter().map(|p| (p.clone(), None)).collect(),
        None,
        each,
    )
}

/// [`scan_event_dir`] over `files` in the given order, each read to its end
/// or to the given number of bytes; with `only`, lines of other types are
/// read for their id alone and not handed to `each`.
fn scan_files(
    files: Vec<(PathBuf, Option<u64>)>,
    only: Option<&str>,
    mut each: impl FnMut(usize, Event, bool),
) -> Result<EventReadReport, EventLogError> {
    let mut report = EventReadReport::default();
    let mut seen: HashSet<[u64; 2]> = HashSet::new();
    for (index, (path, limit)) in files.iter().enumerate() {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let mut reader = BufReader::new(file.take(limit.unwrap_or(u64::MAX)));
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        let mut consumed = 0u64;
        let mut valid_end = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.last() != Some(&b'\n') {
                report.torn_tails.push(path.clone());
                break;
            }
            consumed += n as u64;
            buf.pop();
            if buf.iter().all(u8::is_ascii_whitespace) {
                if buf.is_empty() {
                    valid_end = consumed;
                }
                continue;
            }
            report.lines += 1;
            let start = consumed - n as u64;
            let damaged = |reason: String| DamagedRecord {
                path: path.clone(),
                line: line_no,
                offset: start,
                len: n as u64,
                reason,
            };
            let payload = match decode_record(&buf) {
                Ok(record) => record.payload(),
                Err(reason) => {
                    report.damaged.push(damaged(reason));
                    continue;
                }
            };
            if let Some(id) = only.and_then(|only| other_type_id(payload, only)) {
                if !seen.insert(fingerprint(&id)) {
                    report.duplicates += 1;
                }
                valid_end = consumed;
                continue;
            }
            let event = match parse_event(payload) {
                Ok(event) => event,
                Err(e) => {
                    report.damaged.push(damaged(e.to_string()));
                    continue;
                }
            };
            valid_end = consumed;
            let first = seen.insert(fingerprint(&event.id));
            if !first {
                report.duplicates += 1;
            }
            each(index, event, first);
        }
        if let Some(limit) = *limit
            && consumed < limit
        {
            return Err(EventLogError::Io {
                path: path.clone(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "shrank between two reads: {consumed} of the {limit} bytes read before are left"
                    ),
                ),
            });
        }
        report.bytes.push(consumed);
        report.valid_end.push(valid_end);
    }
    report.files = files.into_iter().map(|(p, _)| p).collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn purchase() -> Value {
        json!({"id": "e1", "type": "purchase", "time": "2026-11-30T10:00:00Z",
               "order_id": "o1", "customer": "c1", "item": "tea", "quantity": 2, "price": 3.5})
    }

    #[test]
    fn a_valid_event_round_trips_through_its_stored_line() {
        for v in [
            purchase(),
            json!({"id": "e2", "type": "exposure", "time": 1_764_496_800,
                   "customer": "c1", "list": "for_you", "items": ["a", "b"],
                   "experiment": "x", "variant": "control", "request_id": "r1",
                   "received_at": "2026-11-30T10:00:05Z"}),
            json!({"id": "e3", "type": "click", "time": "2026-11-30 10:00:00",
                   "customer": "c1", "item": "a"}),
        ] {
            let e = event_from_value(v).unwrap();
            let again = parse_event(event_to_line(&e).as_bytes()).unwrap();
            assert_eq!(e, again);
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, Value)> = vec![
            ("id", json!(null)),
            ("id", json!("")),
            ("id", json!("x".repeat(MAX_EVENT_ID_BYTES + 1))),
            ("type", json!("refund")),
            ("time", json!("yesterday")),
            ("quantity", json!(0)),
            ("quantity", json!("2")),
            ("price", json!(-1.0)),
            ("price", json!(1e39)),
            ("quantity", json!(1e39)),
            ("quantity", json!(1e-50)),
            ("time", json!(1_764_496_800_000i64)),
            ("time", json!(-1)),
            ("time", json!("0000-01-01T00:00:00+01:00")),
            ("customer", json!(["c"])),
            ("item", json!("a\u{0}b")),
            ("colour", json!("red")),
        ];
        for (field, bad) in cases {
            let mut v = purchase();
            v[field] = bad;
            let e = event_from_value(v).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = event_from_value(json!({"id": "e", "type": "exposure", "time": 0,
            "customer": "c", "list": "l", "items": ["a", 7, {}]}))
        .unwrap_err();
        assert_eq!(e.field, "items[2]", "{e}");
        assert!(event_from_value(json!([1])).is_err());
    }

    #[test]
    fn the_dir_reader_keeps_first_ids_skips_a_torn_tail_and_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let line = |id: &str| {
            let mut v = purchase();
            v["id"] = id.into();
            v.to_string()
        };
        std::fs::write(
            dir.path().join("events-0001.jsonl"),
            format!("{}\n{}\n\n", line("a"), line("b")),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("events-0002.jsonl"),
            format!("{}\n{}\n{}", line("b"), line("c"), &line("d")[..20]),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an event").unwrap();
        let (events, report) = read_event_dir(dir.path()).unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.lines, 4);
        assert_eq!(report.files.len(), 2);
        assert_eq!(report.torn_tails.len(), 1);

        std::fs::write(
            dir.path().join("events-0003.jsonl"),
            format!("{}\n{{\"id\": 1}}\n", line("e")),
        )
        .unwrap();
        // A damaged line is skipped, counted and located; the read goes on.
        let (events, report) = read_event_dir(dir.path()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(report.damaged.len(), 1);
        let d = report.damaged[0].to_string();
        assert!(d.contains("events-0003.jsonl:2 (bytes "), "{d}");
    }

    /// A second pass for one type hands over exactly the events of that type
    /// a full read keeps: an id first used by another type (also spelled as
    /// a number) still makes a later line of that id a duplicate.
    #[test]
    fn a_second_pass_for_one_type_keeps_the_full_reads_first_ids() {
        let dir = tempfile::tempdir().unwrap();
        let exposure = |id: Value| {
            json!({"id": id, "type": "exposure", "time": 1_764_496_800,
                   "customer": "c1", "list": "for_you", "items": ["a", "b"]})
            .to_string()
        };
        let bought = |id: &str| {
            let mut v = purchase();
            v["id"] = id.into();
            v.to_string()
        };
        let click = json!({"id": "k1", "type": "click", "time": 1_764_496_800,
                           "customer": "c1", "item": "a"})
        .to_string();
        let lines = [
            exposure(json!("x1")),
            bought("x1"),
            bought("p1"),
            exposure(json!(7)),
            bought("7"),
            click,
            bought("p1"),
            bought("p2"),
        ];
        std::fs::write(
            dir.path().join("events-0001.jsonl"),
            lines.join("\n") + "\n",
        )
        .unwrap();
        let mut all = Vec::new();
        let report = for_each_event(dir.path(), |e| all.push(e)).unwrap();
        let want: Vec<Event> = all
            .into_iter()
            .filter(|e| e.kind.type_name() == "purchase")
            .collect();
        let mut got = Vec::new();
        let again = for_each_event_again(&report, Some("purchase"), |e| got.push(e)).unwrap();
        assert_eq!(got, want);
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert_eq!(
            (again.lines, again.duplicates),
            (report.lines, report.duplicates)
        );
        assert_eq!(again.duplicates, 3);
    }

    /// A second pass reads what the first one did, not what was written
    /// since: not the new file, not lines appended to a read file, not the
    /// completed torn line; a file that shrank is an error naming it.
    #[test]
    fn a_second_pass_stops_where_the_first_one_did() {
        let dir = tempfile::tempdir().unwrap();
        let line = |id: &str| {
            let mut v = purchase();
            v["id"] = id.into();
            v.to_string()
        };
        let first = dir.path().join("events-0001.jsonl");
        let second = dir.path().join("events-0002.jsonl");
        std::fs::write(&first, format!("{}\n{}\n", line("a"), line("b"))).unwrap();
        std::fs::write(&second, format!("{}\n{}", line("a"), &line("c")[..20])).unwrap();
        let mut ids = Vec::new();
        let report = for_each_event(dir.path(), |e| ids.push(e.id)).unwrap();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(report.bytes.len(), 2);
        assert_eq!(report.bytes[1], line("a").len() as u64 + 1);

        let appended = |path: &Path, text: String| {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        };
        appended(&first, format!("{}\n", line("d")));
        appended(&second, format!("{}\n", &line("c")[20..]));
        std::fs::write(
            dir.path().join("events-0003.jsonl"),
            format!("{}\n", line("e")),
        )
        .unwrap();
        let mut again = Vec::new();
        let report_again = for_each_event_again(&report, None, |e| again.push(e.id)).unwrap();
        assert_eq!(again, ["a", "b"]);
        assert_eq!(report_again.bytes, report.bytes);
        assert_eq!((report_again.lines, report_again.duplicates), (3, 1));
        // A fresh read sees everything.
        let (all, _) = read_event_dir(dir.path()).unwrap();
        assert_eq!(all.len(), 5);

        std::fs::write(&first, format!("{}\n", line("a"))).unwrap();
        let e = for_each_event_again(&report, None, |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("events-0001.jsonl") && e.contains("shrank"),
            "{e}"
        );
    }
}

//! The limits of the API, in one place.

/// Length of a list when the request gives no `k`.
pub const DEFAULT_K: usize = 10;

/// The longest list a request may ask for.
pub const MAX_K: usize = 200;

// The audience route checks `k` against `MAX_K` (`invalid_k`) before the
// model's audience checks see it: those must not refuse what `MAX_K` allows.
const _: () = assert!(MAX_K <= encore_model::outreach::MAX_AUDIENCE_K);

/// The longest item or customer id, in bytes (after percent-decoding).
pub const MAX_ID_BYTES: usize = 256;

/// The most ids a basket or an exclusion list may hold.
pub const MAX_LIST_IDS: usize = 1000;

/// The most different values a comma-separated list parameter of a query
/// (`stage=`, `segment=`) may name; repeats are dropped before counting.
pub const MAX_LIST_VALUES: usize = 64;

/// Orders `GET /v1/customers/{id}/orders` answers when the request gives
/// no `limit`, and the most it answers.
pub const DEFAULT_ORDERS: usize = 100;
pub const MAX_ORDERS: usize = 1000;

/// The largest JSON body, in bytes (1 MiB).
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// Default number of scoring jobs (similar items, personal and basket
/// recommendations) that may be queued or running at once before new ones get
/// `503 overloaded`.
pub const DEFAULT_MAX_PENDING_SCORING: usize = 64;

/// Default number of audience streams (`GET /v1/audiences/reactivation`)
/// that may be open at once before new ones get `503 overloaded`: each holds
/// the model it started on until its client has read it all.
pub const DEFAULT_MAX_AUDIENCE_STREAMS: usize = 16;

/// The `Retry-After` of an `overloaded` answer, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 1;

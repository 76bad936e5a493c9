//! `GET /metrics`: counters and latency histograms in the Prometheus text
//! format (version 0.0.4), kept in memory by the request middleware.
//!
//! The list of metrics, with their types and labels, is written once, in
//! `docs/api.md` ("Metrics"); `serving/tests/it/api_doc.rs` checks it against
//! what `/metrics` renders. The event log metrics show only when the server
//! keeps an event log ([`EventCounters::enabled`]).
//!
//! Routes are labelled by pattern, never by raw path, so ids never become
//! label values and the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative), plus the overflow slot.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

/// One route pattern's counters: `(method, status, count)` (a handful of
/// entries, scanned) and its latency histogram.
#[derive(Debug, Default, Clone)]
struct RouteStats {
    requests: Vec<(String, u16, u64)>,
    latency: Histogram,
}

/// The server's metrics.
///
/// One lock per request, and no allocation once a route, method and status
/// have been seen.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    pub(crate) model_lists: AtomicU64,
    pub(crate) fallback_lists: AtomicU64,
    /// Shared with the event writer thread, which counts what it commits.
    pub(crate) events: Arc<EventCounters>,
}

/// What the event log's writer did: experiment exposures written or
/// dropped, posted events, commits, and the log's state.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Set when the server keeps an event log: the event log metrics show.
    pub enabled: AtomicBool,
    pub exposures_logged: AtomicU64,
    pub exposures_dropped: AtomicU64,
    pub posted_accepted: AtomicU64,
    pub posted_duplicates: AtomicU64,
    pub commits: AtomicU64,
    pub commit_micros: AtomicU64,
    pub remembered_ids: AtomicU64,
    /// Set while the log refuses writes (a failed commit, until a probe succeeds).
    pub failed: AtomicBool,
    pub write_failures: AtomicU64,
    /// Damaged records skipped when the log was opened.
    pub damaged_records: AtomicU64,
    /// Retention compactions that finished, and that failed.
    pub compactions: AtomicU64,
    pub compaction_failures: AtomicU64,
    /// What the finished compactions did: files compacted (and removed),
    /// events dropped (exposures, clicks, repeats of an id), bytes reclaimed.
    pub compacted_files: AtomicU64,
    pub compaction_dropped: AtomicU64,
    pub compaction_reclaimed_bytes: AtomicU64,
    /// Duration of the last compaction, finished or failed.
    pub last_compaction_micros: AtomicU64,
}

impl Metrics {
    /// Counts one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes.entry(route.to_string()).or_default(),
        };
        match stats
            .requests
            .iter_mut()
            .find(|(m, s, _)| *s == status && m == method)
        {
            Some(entry) => entry.2 += 1,
            None => stats.requests.push((method.to_string(), status, 1)),
        }
        let slot = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        stats.latency.counts[slot] += 1;
        stats.latency.sum += seconds;
    }

    /// Counts one customer list by where it came from.
    pub fn list_served(&self, fallback: bool) {
        let counter = if fallback {
            &self.fallback_lists
        } else {
            &self.model_lists
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The request metrics in the text format.
    pub fn render_requests(&self, out: &mut String) {
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        out.push_str("# HELP encore_http_requests_total HTTP requests by route pattern, method and status.\n");
        out.push_str("# TYPE encore_http_requests_total counter\n");
        for (route, stats) in &routes {
            let mut requests = stats.requests.clone();
            requests.sort();
            for (method, status, n) in &requests {
                let _ = writeln!(
                    out,
                    "encore_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    escape(route),
                    escape(method)
                );
            }
        }
        out.push_str(
            "# HELP encore_http_request_duration_seconds Time from request to response headers.\n",
        );
        out.push_str("# TYPE encore_http_request_duration_seconds histogram\n");
        for (route, stats) in &routes {
            let h = &stats.latency;
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(
                    out,
                    "encore_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += h.counts[BUCKETS.len()];
            let _ = writeln!(
                out,
                "encore_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "encore_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "encore_http_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}"
            );
        }
        labelled_counter(
            out,
            "encore_recommendations_total",
            "Customer lists served, by source.",
            "source",
            &[
                ("model", &self.model_lists),
                ("fallback", &self.fallback_lists),
            ],
        );
        let e = &self.events;
        labelled_counter(
            out,
            "encore_exposures_total",
            "Experiment exposures: logged, or dropped (at most once).",
            "result",
            &[
                ("logged", &e.exposures_logged),
                ("dropped", &e.exposures_dropped),
            ],
        );
        if !e.enabled.load(Ordering::Relaxed) {
            return;
        }
        labelled_counter(
            out,
            "encore_events_total",
            "Posted events: accepted (written) or duplicate.",
            "result",
            &[
                ("accepted", &e.posted_accepted),
                ("duplicate", &e.posted_duplicates),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP encore_event_log_commits_total Writes and fsyncs of the event log.\n\
             # TYPE encore_event_log_commits_total counter\n\
             encore_event_log_commits_total {}\n\
             # HELP encore_event_log_commit_seconds_total Time spent in event log commits.\n\
             # TYPE encore_event_log_commit_seconds_total counter\n\
             encore_event_log_commit_seconds_total {}\n\
             # HELP encore_event_log_remembered_ids Event ids held for idempotency.\n\
             # TYPE encore_event_log_remembered_ids gauge\n\
             encore_event_log_remembered_ids {}\n\
             # HELP encore_event_log_failed 1 while the event log refuses writes (a failed write, until a probe succeeds).\n\
             # TYPE encore_event_log_failed gauge\n\
             encore_event_log_failed {}\n\
             # HELP encore_event_log_write_failures_total Event log commits that failed.\n\
             # TYPE encore_event_log_write_failures_total counter\n\
             encore_event_log_write_failures_total {}\n\
             # HELP encore_event_log_damaged_records Damaged records skipped when the event log was opened.\n\
             # TYPE encore_event_log_damaged_records gauge\n\
             encore_event_log_damaged_records {}",
            e.commits.load(Ordering::Relaxed),
            e.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            e.remembered_ids.load(Ordering::Relaxed),
            u8::from(e.failed.load(Ordering::Relaxed)),
            e.write_failures.load(Ordering::Relaxed),
            e.damaged_records.load(Ordering::Relaxed),
        );
        labelled_counter(
            out,
            "encore_event_log_compactions_total",
            "Retention compactions of the event log, by result.",
            "result",
            &[
                ("success", &e.compactions),
                ("failure", &e.compaction_failures),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP encore_event_log_compacted_files_total Event files compacted to their purchases (and removed).\n\
             # TYPE encore_event_log_compacted_files_total counter\n\
             encore_event_log_compacted_files_total {}\n\
             # HELP encore_event_log_compaction_dropped_events_total Events compactions dropped: exposures, clicks and repeats of an id.\n\
             # TYPE encore_event_log_compaction_dropped_events_total counter\n\
             encore_event_log_compaction_dropped_events_total {}\n\
             # HELP encore_event_log_compaction_reclaimed_bytes_total Disk bytes compactions freed in the log directory.\n\
             # TYPE encore_event_log_compaction_reclaimed_bytes_total counter\n\
             encore_event_log_compaction_reclaimed_bytes_total {}\n\
             # HELP encore_event_log_last_compaction_seconds Duration of the last compaction (0: none yet).\n\
             # TYPE encore_event_log_last_compaction_seconds gauge\n\
             encore_event_log_last_compaction_seconds {}",
            e.compacted_files.load(Ordering::Relaxed),
            e.compaction_dropped.load(Ordering::Relaxed),
            e.compaction_reclaimed_bytes.load(Ordering::Relaxed),
            e.last_compaction_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
    }
}

/// A counter family with one label: its HELP and TYPE lines, then one line
/// per `(label value, counter)`.
fn labelled_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, &AtomicU64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, counter) in values {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{value}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe("/a", "GET", 200, 0.0004);
        m.observe("/a", "GET", 200, 0.003);
        m.observe("/a", "GET", 404, 9.0);
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(
            out.contains(
                "encore_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 2"
            )
        );
        assert!(
            out.contains(
                "encore_http_requests_total{route=\"/a\",method=\"GET\",status=\"404\"} 1"
            )
        );
        assert!(
            out.contains(
                "encore_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.0005\"} 1"
            )
        );
        assert!(
            out.contains(
                "encore_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.005\"} 2"
            )
        );
        assert!(
            out.contains("encore_http_request_duration_seconds_bucket{route=\"/a\",le=\"2.5\"} 2")
        );
        assert!(
            out.contains("encore_http_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3")
        );
        assert!(out.contains("encore_http_request_duration_seconds_count{route=\"/a\"} 3"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

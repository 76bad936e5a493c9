//! Durability of `POST /v1/events` against the real binary: clients post
//! batches while the server is killed with SIGKILL at random moments; after
//! each restart on the same log the batch that was in flight is sent again.
//! At the end every acknowledged event is in the log, and no event is in it
//! twice (checked on the raw lines, not only through the deduplicating reader).
//! The log starts a new file every 16 KiB (about every second batch), so
//! the kills also land while files are being rotated.
//!
//! A second test kills the server while it compacts the files past the
//! retention at start-up (`--event-retention-days`), and checks that no
//! purchase is lost and that no id of the idempotency window is forgotten.

use encore_data::events::{decode_record, is_event_file, parse_event, read_event_dir};
use encore_data::synth::{SynthParams, generate};
use encore_model::manifest::DataSummary;
use encore_model::pipeline::{EngineConfig, train_engine};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: usize = 4;
const CLIENTS: usize = 3;
const EVENTS_PER_BATCH: usize = 25;

/// A small model saved in `dir`; returns its customer and item ids.
fn model(dir: &Path) -> (Vec<String>, Vec<String>) {
    let log = generate(&SynthParams {
        customers: 100,
        items: 40,
        purchases: 2_000,
        categories: 4,
        ..SynthParams::default()
    });
    let mut config = EngineConfig::default();
    config.als.factors = 4;
    config.als.iterations = 2;
    let engine = train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
    encore_model::artifact::save(&engine, dir).unwrap();
    (
        log.customers.ids().map(str::to_owned).collect(),
        log.items.ids().map(str::to_owned).collect(),
    )
}

/// A seeded xorshift generator (the test needs no statistical quality).
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The running server and its address.
struct Server {
    child: Child,
    addr: String,
}

fn start(model_dir: &Path, log_dir: &Path, stderr: &Path) -> Server {
    start_with(model_dir, log_dir, stderr, &[])
}

fn start_with(model_dir: &Path, log_dir: &Path, stderr: &Path, extra: &[&str]) -> Server {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_encore-serve"))
        .args(["--model", model_dir.to_str().unwrap()])
        .args(["--events", log_dir.to_str().unwrap()])
        .args(["--bind", "127.0.0.1:0", "--workers", "2"])
        .args(["--event-file-bytes", "16384"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("starts encore-serve");
    // The example requests on stdout name the bound address.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!(
                "encore-serve printed no address; its log:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        };
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

fn kill9(server: &mut Server) {
    let status = Command::new("kill")
        .args(["-9", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.child.wait().unwrap();
}

/// Posts a batch over a fresh connection; `Ok((status, body))` if a whole
/// answer came back, `Err` if the connection broke first.
fn post(addr: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("incomplete answer {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let body = serde_json::from_str(body)
        .map_err(|e| std::io::Error::other(format!("incomplete body {body:?}: {e}")))?;
    Ok((status, body))
}

/// One batch: its event ids and its JSON body.
fn batch(client: usize, n: usize, customers: &[String], items: &[String]) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let events: Vec<Value> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let id = format!("c{client}-b{n}-e{i}");
            ids.push(id.clone());
            let customer = &customers[(client * 31 + n * 7 + i) % customers.len()];
            let item = &items[(n * 13 + i) % items.len()];
            if i % 5 == 4 {
                json!({"id": id, "type": "click", "time": "2025-06-01T00:00:00Z",
                       "customer": customer, "item": item, "list": "for_you"})
            } else {
                json!({"id": id, "type": "purchase", "time": 1_750_000_000 + n as i64,
                       "order_id": format!("o-{client}-{n}"), "customer": customer,
                       "item": item, "quantity": 1 + i % 3, "price": 2.5})
            }
        })
        .collect();
    (ids, json!({ "events": events }).to_string())
}

/// What one client thread did until the server died: the batches
/// acknowledged, and the one in flight when the connection broke.
struct ClientRun {
    next: usize,
    in_flight: Option<(Vec<String>, String)>,
}

fn run_client(
    addr: String,
    client: usize,
    mut next: usize,
    customers: Arc<Vec<String>>,
    items: Arc<Vec<String>>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> ClientRun {
    loop {
        if stop.load(Ordering::SeqCst) {
            return ClientRun {
                next,
                in_flight: None,
            };
        }
        let (ids, body) = batch(client, next, &customers, &items);
        match post(&addr, &body) {
            Ok((200, answer)) => {
                let accepted = answer["accepted"].as_u64().unwrap();
                let duplicates = answer["duplicates"].as_u64().unwrap();
                assert_eq!(
                    (accepted, duplicates),
                    (EVENTS_PER_BATCH as u64, 0),
                    "a fresh batch"
                );
                acked.lock().unwrap().extend(ids);
                next += 1;
            }
            Ok((status, answer)) => panic!("batch refused: {status} {answer}"),
            Err(_) => {
                return ClientRun {
                    next: next + 1,
                    in_flight: Some((ids, body)),
                };
            }
        }
    }
}

#[test]
fn every_acknowledged_event_survives_kill_9_once() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let log_dir: PathBuf = dir.path().join("events");
    let stderr = dir.path().join("server.log");
    let (customers, items) = model(&model_dir);
    let (customers, items) = (Arc::new(customers), Arc::new(items));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut rng = Rng::from_clock();
    let mut next = [0usize; CLIENTS];
    let mut pending: Vec<(Vec<String>, String)> = Vec::new();
    let mut retried_duplicates = 0u64;

    for round in 0..=KILLS {
        let mut server = start(&model_dir, &log_dir, &stderr);
        // The batches in flight at the last kill, sent again unchanged.
        for (ids, body) in pending.drain(..) {
            let (status, answer) = post(&server.addr, &body).expect("the retry is answered");
            assert_eq!(status, 200, "{answer}");
            let accepted = answer["accepted"].as_u64().unwrap();
            let duplicates = answer["duplicates"].as_u64().unwrap();
            assert_eq!(accepted + duplicates, ids.len() as u64, "{answer}");
            retried_duplicates += duplicates;
            acked.lock().unwrap().extend(ids);
        }
        if round == KILLS {
            kill9(&mut server);
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (addr, customers, items) = (
                    server.addr.clone(),
                    Arc::clone(&customers),
                    Arc::clone(&items),
                );
                let (acked, stop, start) = (Arc::clone(&acked), Arc::clone(&stop), next[client]);
                std::thread::spawn(move || {
                    run_client(addr, client, start, customers, items, acked, stop)
                })
            })
            .collect();
        // Let some batches through, then kill at a random moment.
        let began = Instant::now();
        let before = acked.lock().unwrap().len();
        while acked.lock().unwrap().len() < before + 2 * EVENTS_PER_BATCH {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "no batch acknowledged; server log:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        kill9(&mut server);
        stop.store(true, Ordering::SeqCst);
        for (client, t) in threads.into_iter().enumerate() {
            let run = t.join().expect("client thread");
            next[client] = run.next;
            pending.extend(run.in_flight);
        }
    }

    // Every complete line, in file order, exactly as stored.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_event_file(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    files.sort();
    let mut raw_ids: HashMap<String, usize> = HashMap::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..=end],
            None => &bytes[..0],
        };
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let payload = decode_record(line).unwrap_or_else(|e| {
                panic!(
                    "{}: damaged line {:?}: {e}",
                    file.display(),
                    String::from_utf8_lossy(line)
                )
            });
            let event = parse_event(payload.payload()).unwrap_or_else(|e| {
                panic!(
                    "{}: invalid line {:?}: {e}",
                    file.display(),
                    String::from_utf8_lossy(line)
                )
            });
            *raw_ids.entry(event.id).or_default() += 1;
        }
    }
    let twice: Vec<_> = raw_ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} events logged more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let acked = acked.lock().unwrap();
    let distinct: HashSet<&String> = acked.iter().collect();
    assert_eq!(distinct.len(), acked.len(), "each batch acknowledged once");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !raw_ids.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Every logged event belongs to an acknowledged batch (retries included).
    assert_eq!(raw_ids.len(), acked.len());
    // The reader agrees: the same events, none dropped as a duplicate.
    let (events, report) = read_event_dir(&log_dir).unwrap();
    assert_eq!(report.duplicates, 0);
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert!(
        files.len() > KILLS,
        "{} files: rotations not exercised",
        files.len()
    );
    assert_eq!(events.len(), raw_ids.len());
    assert!(acked.len() >= KILLS * 2 * EVENTS_PER_BATCH);
    println!(
        "{} events acknowledged over {KILLS} kills ({} logged, {} files, {} retried events were already logged)",
        acked.len(),
        raw_ids.len(),
        files.len(),
        retried_duplicates
    );
}

/// Seconds since the epoch, now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Appends `files` batches of old events (received 3 days ago: past a
/// 1-day retention, inside the 7-day idempotency window), one file each;
/// returns the ids of the purchases and of the clicks.
fn old_batches(log_dir: &Path, round: usize, files: usize) -> (Vec<String>, Vec<String>) {
    use encore_data::event_log::{EventLog, EventLogOptions};
    let options = EventLogOptions {
        max_file_bytes: 16_384,
        ..EventLogOptions::default()
    };
    let mut log = EventLog::open(log_dir, options).unwrap();
    let (mut purchases, mut clicks) = (Vec::new(), Vec::new());
    for f in 0..files {
        let events: Vec<_> = (0..60)
            .map(|i| {
                let v = if i % 2 == 0 {
                    let id = format!("old-r{round}-f{f}-p{i}");
                    purchases.push(id.clone());
                    json!({"id": id, "type": "purchase", "time": 1_750_000_000 + i,
                           "order_id": format!("o-{round}-{f}"), "customer": "c1",
                           "item": "i1", "quantity": 1})
                } else {
                    let id = format!("old-r{round}-f{f}-k{i}");
                    clicks.push(id.clone());
                    json!({"id": id, "type": "click", "time": 1_750_000_000 + i,
                           "customer": "c1", "item": "i1"})
                };
                encore_data::events::event_from_value(v).unwrap()
            })
            .collect();
        // Past the file limit: the next batch starts a new file.
        log.append(events, now() - 3 * 86_400).unwrap();
    }
    (purchases, clicks)
}

/// What a kill left: compacted files, the checkpoint's last compacted
/// file, and the originals at or before it (a compaction cut short).
fn compaction_state(log_dir: &Path) -> (usize, u64, usize) {
    if !log_dir.exists() {
        return (0, 0, 0);
    }
    let through = encore_data::event_log::read_checkpoint(log_dir)
        .unwrap()
        .map_or(0, |c| c.compacted_through);
    let (mut compacted, mut leftovers) = (0, 0);
    for e in std::fs::read_dir(log_dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if encore_data::event_log::compacted_seq(&name).is_some() {
            compacted += 1;
        }
        if encore_data::event_log::original_seq(&name).is_some_and(|s| s <= through) {
            leftovers += 1;
        }
    }
    (compacted, through, leftovers)
}

#[test]
fn a_compaction_killed_at_any_moment_loses_no_purchase_and_no_id() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let log_dir: PathBuf = dir.path().join("events");
    let stderr = dir.path().join("server.log");
    model(&model_dir);
    let retention = ["--event-retention-days", "1"];
    let mut rng = Rng::from_clock();
    let (mut purchases, mut clicks) = (Vec::new(), Vec::new());
    let mut cut_short = 0;
    // How long a start with its compaction takes, measured on round 0.
    let mut full = Duration::from_millis(300);
    for round in 0..6 {
        let through_before = compaction_state(&log_dir).1;
        let (p, c) = old_batches(&log_dir, round, 80);
        purchases.extend(p);
        clicks.extend(c);
        let began = Instant::now();
        let mut server = start_with(&model_dir, &log_dir, &stderr, &retention);
        if round == 0 {
            // Wait for the compaction to finish, to time it.
            while compaction_state(&log_dir).1 == 0 || compaction_state(&log_dir).2 > 0 {
                assert!(began.elapsed() < Duration::from_secs(60), "no compaction");
                std::thread::sleep(Duration::from_millis(2));
            }
            full = began.elapsed();
        } else {
            let at = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
            std::thread::sleep(at.saturating_sub(began.elapsed()));
        }
        kill9(&mut server);
        let (_, through, leftovers) = compaction_state(&log_dir);
        if leftovers > 0 || through == through_before {
            cut_short += 1;
        }
        // Whatever the moment: every purchase is still read.
        let (events, report) = read_event_dir(&log_dir).unwrap();
        assert!(report.damaged.is_empty(), "{:?}", report.damaged);
        let read: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let lost: Vec<_> = purchases
            .iter()
            .filter(|p| !read.contains(p.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} purchases lost",
            lost.len()
        );
    }

    // A clean start finishes the work; every old id is still a duplicate.
    let mut server = start_with(&model_dir, &log_dir, &stderr, &retention);
    let all: Vec<&String> = purchases.iter().chain(&clicks).collect();
    for chunk in all.chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|id| {
                json!({"id": id, "type": "click", "time": 1_750_000_000,
                       "customer": "c1", "item": "i1"})
            })
            .collect();
        let (status, answer) =
            post(&server.addr, &json!({ "events": events }).to_string()).unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["accepted"], 0,
            "an id of the window forgotten: {answer}"
        );
        assert_eq!(answer["duplicates"], chunk.len(), "{answer}");
    }
    kill9(&mut server);
    let (compacted, through, leftovers) = compaction_state(&log_dir);
    assert!(compacted > 0 && through > 0 && leftovers == 0);
    // Each purchase once on disk; the clicks of compacted files are gone.
    let mut raw: HashMap<String, usize> = HashMap::new();
    for e in std::fs::read_dir(&log_dir).unwrap() {
        let path = e.unwrap().path();
        if !is_event_file(path.file_name().unwrap().to_str().unwrap()) {
            continue;
        }
        for line in std::fs::read(&path).unwrap().split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let event = parse_event(decode_record(line).unwrap().payload()).unwrap();
            *raw.entry(event.id).or_default() += 1;
        }
    }
    for p in &purchases {
        assert_eq!(raw.get(p), Some(&1), "{p}");
    }
    let clicks_left = clicks.iter().filter(|c| raw.contains_key(*c)).count();
    assert!(clicks_left <= 60, "{clicks_left} clicks not compacted");
    println!(
        "{} purchases and {} clicks over 6 starts, {cut_short} of 5 kills before a compaction was done (a full start and compaction: {full:?})",
        purchases.len(),
        clicks.len()
    );
}

//! The `encore-serve` binary itself: configuration layering and refusals,
//! JSON logs carrying the request id, and the graceful stop on SIGTERM.
//!
//! Each test runs the real binary with its own temporary directory and an
//! ephemeral port, and talks HTTP/1.1 over a plain `TcpStream`.

use crate::support::synth_engine;
use encore_data::synth::{SynthParams, generate};
use encore_model::artifact;
use encore_model::artifact::store::Store;
use encore_model::manifest::DataSummary;
use encore_model::pipeline::{EngineConfig, train_engine};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary with `args`, no `ENCORE__` variable from the test's own
/// environment, the default log filter and no backtraces in error messages.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_encore-serve"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENCORE__") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs a command expected to end at once; gives its status, stdout and stderr.
fn run(cmd: &mut Command) -> (ExitStatus, String, String) {
    let out = cmd.output().expect("runs encore-serve");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running server and the stderr lines it has written so far.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the binary on an ephemeral loopback port and waits for `/readyz`.
    fn start(mut cmd: Command) -> Server {
        cmd.args(["--bind", "127.0.0.1:0", "--workers", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starts encore-serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("encore-serve listening") {
                    let _ = tx.send(listening_addr(&line));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no 'encore-serve listening' line; stderr:\n{}",
                stderr.lock().unwrap().join("\n")
            );
        };
        let server = Server {
            child,
            addr,
            stderr,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _, _)) = server.get("/readyz", &[]) {
                return server;
            }
            assert!(Instant::now() < deadline, "/readyz never answered 200");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` with extra headers: status, lower-cased header lines, body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String, String)> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes())?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, head.to_ascii_lowercase(), body.to_string()))
    }

    /// Sends SIGTERM.
    fn signal(&self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success(), "kill -TERM {pid}");
    }

    /// Waits up to 20 s for a stderr line containing `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.stderr.lock().unwrap().iter().any(|l| l.contains(text)) {
            if Instant::now() > deadline {
                panic!(
                    "no {text:?} line; stderr:\n{}",
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` for the exit; gives the exit status and every
    /// stderr line.
    fn wait(mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {within:?} after the signal; stderr:\n{}",
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.reader.take().unwrap().join().unwrap();
        let lines = self.stderr.lock().unwrap().clone();
        (status, lines)
    }

    /// Sends SIGTERM and [`wait`](Self::wait)s.
    fn terminate(self, within: Duration) -> (ExitStatus, Vec<String>) {
        self.signal();
        self.wait(within)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The first `127.0.0.1:<port>` in a log line.
fn listening_addr(line: &str) -> SocketAddr {
    let at = line
        .find("127.0.0.1:")
        .expect("the listening line names the address");
    let rest = &line[at..];
    let end = rest
        .char_indices()
        .skip("127.0.0.1:".len())
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().expect("an address")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.publish(&mut synth_engine("v1")).unwrap();
    store.set_current("v1").unwrap();
    // With a store the watcher thread runs (every 50 ms): it must not keep
    // the process alive.
    let server = Server::start(command(&[
        "--store",
        path_str(dir.path()),
        "--watch-interval",
        "0.05",
        "--shutdown-timeout",
        "5",
    ]));
    let (status, head, body) = server.get("/v1/model", &[]).unwrap();
    assert_eq!(status, 200, "{head}\n{body}");

    let (status, lines) = server.terminate(Duration::from_secs(15));
    let log = lines.join("\n");
    assert!(status.success(), "exit status {status:?}; stderr:\n{log}");
    let shutting = lines
        .iter()
        .position(|l| l.contains("shutting down") && l.contains("SIGTERM"))
        .unwrap_or_else(|| panic!("no 'shutting down' line naming SIGTERM:\n{log}"));
    let stopped = lines
        .iter()
        .position(|l| l.contains("stopped"))
        .unwrap_or_else(|| panic!("no 'stopped' line:\n{log}"));
    assert!(shutting < stopped, "{log}");
    assert!(lines[shutting].contains("timeout_secs=5"), "{log}");
}

#[test]
fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    artifact::save(&synth_engine("v1"), &model).unwrap();
    let server = Server::start(command(&[
        "--model",
        path_str(&model),
        "--log-format",
        "json",
    ]));

    // A sane id is taken and echoed, on a success and on an error alike.
    let (status, head, _) = server
        .get("/v1/model", &[("X-Request-Id", "test-req.42_a")])
        .unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("\r\nx-request-id: test-req.42_a"), "{head}");
    let (status, head, body) = server
        .get("/no/such/route", &[("X-Request-Id", "missing-1")])
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(head.contains("\r\nx-request-id: missing-1"), "{head}");
    // One that is not sane is replaced by a generated one.
    let (_, head, _) = server
        .get("/healthz", &[("X-Request-Id", "not/sane")])
        .unwrap();
    let generated = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no x-request-id header: {head}"))
        .to_string();
    assert!(
        generated != "not/sane" && !generated.is_empty(),
        "{generated}"
    );

    let (status, lines) = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = |id: &str| {
        events
            .iter()
            .find(|e| e["span"]["request_id"] == id && e["fields"]["message"] == "request")
            .unwrap_or_else(|| {
                panic!(
                    "no request line with request_id {id}:\n{}",
                    lines.join("\n")
                )
            })
    };
    let ok = request("test-req.42_a");
    assert_eq!(ok["span"]["route"], "/v1/model");
    assert_eq!(ok["span"]["status"], 200);
    assert_eq!(request("missing-1")["span"]["status"], 404);
    assert_eq!(request(&generated)["span"]["route"], "/healthz");
    assert!(events.iter().any(|e| e["fields"]["message"] == "stopped"));
}

#[test]
fn print_config_shows_flags_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serve.toml");
    std::fs::write(
        &file,
        "model = \"/srv/model\"\nbind = \"127.0.0.1:1111\"\nworkers = 2\nmax_pending = 5\n",
    )
    .unwrap();
    let (status, stdout, stderr) = run(command(&[
        "--config",
        path_str(&file),
        "--workers",
        "4",
        "--print-config",
    ])
    .env("ENCORE__BIND", "127.0.0.1:2222")
    .env("ENCORE__WORKERS", "3")
    .env("ENCORE__LOG_FORMAT", "json"));
    assert!(status.success(), "{stderr}");
    let table: toml::Table = toml::from_str(&stdout).expect("prints TOML");
    assert_eq!(table["model"].as_str(), Some("/srv/model"));
    assert_eq!(table["bind"].as_str(), Some("127.0.0.1:2222"));
    assert_eq!(table["workers"].as_integer(), Some(4));
    assert_eq!(table["max_pending"].as_integer(), Some(5));
    assert_eq!(table["log_format"].as_str(), Some("json"));
    assert_eq!(table["shutdown_timeout"].as_integer(), Some(10));
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} line:\n{stdout}"))
    };
    assert!(
        line("bind").ends_with("# environment variable ENCORE__BIND"),
        "{stdout}"
    );
    assert!(line("workers").ends_with("# flag --workers"), "{stdout}");
    assert!(
        line("max_pending").ends_with(&format!("# config file {}", file.display())),
        "{stdout}"
    );
    assert!(line("shutdown_timeout").ends_with("# default"), "{stdout}");
}

#[test]
fn an_unknown_environment_variable_stops_the_start() {
    let (status, _, stderr) =
        run(command(&["--model", "/nonexistent"]).env("ENCORE__BIND_TYPO", "1"));
    assert!(!status.success());
    assert!(stderr.contains("ENCORE__BIND_TYPO"), "{stderr}");
}

#[test]
fn a_bad_environment_value_names_the_variable_and_value() {
    let (status, _, stderr) =
        run(command(&["--model", "/nonexistent"]).env("ENCORE__MAX_PENDING", "lots"));
    assert!(!status.success());
    assert!(
        stderr.contains("ENCORE__MAX_PENDING") && stderr.contains("\"lots\""),
        "{stderr}"
    );
}

#[test]
fn an_unknown_file_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serve.toml");
    std::fs::write(&file, "model = \"/nonexistent\"\nbind_typo = \"x\"\n").unwrap();
    let (status, _, stderr) = run(&mut command(&["--config", path_str(&file)]));
    assert!(!status.success());
    assert!(stderr.contains("bind_typo"), "{stderr}");
    assert!(stderr.contains(path_str(&file)), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

/// A model whose reactivation audience over every stage, 200 items a row,
/// is tens of megabytes: more than the socket buffers hold, so the answer
/// stays in flight while the client does not read.
fn big_audience_model(dir: &Path) -> std::path::PathBuf {
    let log = generate(&SynthParams {
        customers: 2_000,
        items: 200,
        purchases: 20_000,
        categories: 4,
        ..SynthParams::default()
    });
    let mut config = EngineConfig::default();
    config.als.factors = 4;
    config.als.iterations = 2;
    let engine = train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
    let model = dir.join("model");
    artifact::save(&engine, &model).unwrap();
    model
}

/// Starts the audience request and reads its status line, leaving the rest
/// of the answer unread.
fn start_audience(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let uri = "/v1/audiences/reactivation?stage=new,active,dormant,at_risk,lost&k=200";
    let req = format!(
        "GET {uri} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).unwrap();
    assert_eq!(
        &status,
        b"HTTP/1.1 200",
        "{}",
        String::from_utf8_lossy(&status)
    );
    stream
}

#[test]
fn an_answer_in_flight_at_sigterm_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let model = big_audience_model(dir.path());
    let mut server = Server::start(command(&[
        "--model",
        path_str(&model),
        "--shutdown-timeout",
        "60",
    ]));
    let mut stream = start_audience(&server);
    server.signal();
    server.wait_for_log("shutting down");
    // The server waits for the answer it is writing, which waits for us.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited before the answer was read"
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.len() > 1 << 20, "only {} bytes", rest.len());
    assert!(
        rest.ends_with(b"\r\n0\r\n\r\n"),
        "the chunked answer is complete"
    );

    let (status, lines) = server.wait(Duration::from_secs(20));
    let log = lines.join("\n");
    assert!(status.success(), "exit status {status:?}; stderr:\n{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("second signal"), "{log}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = big_audience_model(dir.path());
    let server = Server::start(command(&[
        "--model",
        path_str(&model),
        "--shutdown-timeout",
        "60",
    ]));
    let _unread = start_audience(&server);
    server.signal();
    server.wait_for_log("shutting down");
    server.signal();
    let (status, lines) = server.wait(Duration::from_secs(20));
    let log = lines.join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("second signal"), "{log}");
    assert!(!log.contains("stopped"), "{log}");
}

/// Without keys, an address beyond loopback stops the start-up before
/// anything listens, and the message says what to do.
#[test]
fn no_keys_and_a_public_address_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    artifact::save(&synth_engine("v1"), &model).unwrap();
    let (status, _, stderr) = run(&mut command(&[
        "--model",
        path_str(&model),
        "--bind",
        "0.0.0.0:0",
    ]));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--api-keys") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
    // Refused before the model is loaded or anything listens.
    assert!(
        !stderr.contains("listening") && !stderr.contains("model loaded"),
        "{stderr}"
    );
}

/// SIGHUP reads the key file again: a rotated key works without a restart.
#[test]
fn sighup_reads_the_key_file_again() {
    use sha2::{Digest, Sha256};
    let hex = |key: &str| -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let file_with = |key: &str| {
        format!(
            "[[keys]]\nname = \"shop\"\nrole = \"read\"\nsha256 = \"{}\"\n",
            hex(key)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    artifact::save(&synth_engine("v1"), &model).unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(&keys, file_with("old-key")).unwrap();
    let server = Server::start(command(&[
        "--model",
        path_str(&model),
        "--api-keys",
        path_str(&keys),
    ]));
    let kpis = |key: &str| server.get("/v1/kpis", &[("x-api-key", key)]).unwrap().0;
    assert_eq!(kpis("old-key"), 200);
    assert_eq!(kpis("new-key"), 401);
    std::fs::write(&keys, file_with("new-key")).unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    server.wait_for_log("API keys read again");
    assert_eq!(kpis("new-key"), 200);
    assert_eq!(kpis("old-key"), 401);
    let (status, lines) = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "{}", lines.join("\n"));
}

/// A client that does not finish its request head within `request_timeout`
/// is answered 408 and its connection closed.
#[test]
fn a_slow_request_head_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    artifact::save(&synth_engine("v1"), &model).unwrap();
    let server = Server::start(command(&[
        "--model",
        path_str(&model),
        "--request-timeout",
        "1",
    ]));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Reads one answer from a keep-alive connection: its status.
fn read_one_answer(stream: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// `max_connections` caps the connections the server holds: with the cap
/// taken by two idle clients, a third connection waits (in the listen
/// backlog) without an answer, and is answered as soon as one of the two
/// goes away.
#[test]
fn connections_beyond_max_connections_wait_for_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    artifact::save(&synth_engine("v1"), &model).unwrap();
    let server = Server::start(command(&[
        "--model",
        path_str(&model),
        "--max-connections",
        "2",
        "--request-timeout",
        "120",
    ]));
    // Two connections the server has accepted (each answered once), then
    // holding it with the start of a next request.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(read_one_answer(&mut s), 200);
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let mut third = TcpStream::connect(server.addr).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = third.read(&mut byte);
    assert!(
        waited.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "a third connection was served beyond max_connections = 2: {waited:?}"
    );
    drop(held.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(read_one_answer(&mut third), 200);
}

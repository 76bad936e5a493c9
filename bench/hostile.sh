#!/usr/bin/env bash
# encore-serve under hostile clients while wrk sends normal traffic:
#   - 1,000 slow-header connections (a header byte a second, reconnecting
#     when the server cuts them at request_timeout);
#   - 100 slow readers of the reactivation audience stream (a 4 KiB receive
#     buffer, a few bytes read a second, reconnecting when cut off or
#     refused);
#   - a flood of requests with made-up methods (MAAAA.., each a new name)
#     over 4 keep-alive connections.
# Normal traffic is bench/load.lua's mix of similar-items and for-you
# requests (every response checked: status 200, the model's version).
# Prints, for the normal traffic alone and then under attack: requests/s,
# p50/p99, non-200 answers and socket errors; the server's RSS before and
# after the attack, its /metrics size and what the hostile clients saw.
#
#   bench/hostile.sh [DURATION_SECS]      # default 20 s per run
#
# Environment: WORK [/tmp/encore-hostile] CONNECTIONS [8] WRK_THREADS [1]
# SERVER_WORKERS [2] PORT [18191] BIN [target/release] ROUNDS [1]: attacks
# in a row on the same server, its RSS printed after each (does it keep
# growing, or settle?). MALLOC_ARENA_MAX, if set, reaches the server and
# replaces its own cap of 2 malloc arenas (docs/operations.md, Memory).
# The model is the bundled Online Retail sample (trained once into
# WORK/model). wrk, the server and the hostile clients share the cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
DURATION="${1:-20}"
set_defaults WORK=/tmp/encore-hostile SERVER_WORKERS=2 PORT=18191
load_settings 8
ensure_bin "$ROOT"
ensure_sample_model "$BIN" "$ROOT" "$WORK"
write_id_lists "$WORK/model" "$WORK"
python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model_version"], end="")' \
    "$WORK/model/manifest.json" >"$WORK/version.txt"
export ITEMS="$WORK/items.txt" CUSTOMERS="$WORK/customers.txt" VERSIONS="$(cat "$WORK/version.txt")"

# 1,000 slow clients, the server's sockets and wrk's: more than the usual 1,024 descriptors.
[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096
"$BIN/encore-serve" --model "$WORK/model" --bind "127.0.0.1:$PORT" --workers "$SERVER_WORKERS" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
HOSTILE=
trap 'kill $SERVER ${HOSTILE:-} 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
rss() {
    echo "$(( $(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status") / 1024 )) MiB," \
        "$(awk '/Threads/ {print $2}' "/proc/$SERVER/status") threads"
}

echo "== warm-up (5 s)"
run_load 5 >/dev/null
echo "== normal traffic alone: ${DURATION}s, $CONNECTIONS connections"
run_load
echo "server RSS before the attack: $(rss); malloc arenas at most ${MALLOC_ARENA_MAX:-2 (the server cap)}"

for round in $(seq "${ROUNDS:-1}"); do
python3 - "$PORT" "$((DURATION + 8))" >"$WORK/hostile.out" 2>&1 <<'PY' &
import asyncio, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
stats = {"slow_header_closed": 0, "slow_header_reset": 0, "reader_streams": 0,
         "reader_cut": 0, "reader_503": 0, "reader_bytes": 0, "methods_sent": 0,
         "methods_405_or_404": 0, "methods_other": 0, "errors": 0}
end = time.monotonic() + seconds

async def open_conn(rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=s)

async def slow_header(i):
    while time.monotonic() < end:
        try:
            r, w = await open_conn()
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            await w.drain()
            n = 0
            while time.monotonic() < end:
                await asyncio.sleep(1)
                w.write(b"X-%d: %d\r\n" % (n, n)); n += 1
                await w.drain()
                if r.at_eof():
                    break
            stats["slow_header_closed"] += 1
            w.close()
        except (ConnectionError, OSError):
            # The server cut the connection at request_timeout.
            stats["slow_header_reset"] += 1
            await asyncio.sleep(0.2)

async def slow_reader(i):
    path = b"/v1/audiences/reactivation?stage=dormant,at_risk,lost,active,new&k=10"
    while time.monotonic() < end:
        try:
            r, w = await open_conn(rcvbuf=4096)
            w.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await w.drain()
            head = await r.read(64)
            if b" 503 " in head:
                stats["reader_503"] += 1
                w.close(); await asyncio.sleep(1); continue
            stats["reader_streams"] += 1
            while time.monotonic() < end:
                await asyncio.sleep(1)
                got = await r.read(16)
                if not got:
                    # Cut by the server (write_timeout) or finished.
                    stats["reader_cut"] += 1
                    break
                stats["reader_bytes"] += len(got)
            w.close()
        except (ConnectionError, OSError):
            stats["errors"] += 1
            await asyncio.sleep(1)

async def methods(i):
    n = 0
    while time.monotonic() < end:
        try:
            r, w = await open_conn()
            while time.monotonic() < end:
                n += 1
                name = b"M" + b"A" * (n % 40 + 1) + str(i * 10_000_000 + n).encode()
                w.write(name + b" /v1/model HTTP/1.1\r\nHost: x\r\n\r\n")
                await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await r.readexactly(length)
                stats["methods_sent"] += 1
                if b" 405 " in head[:16] or b" 404 " in head[:16]:
                    stats["methods_405_or_404"] += 1
                else:
                    stats["methods_other"] += 1
            w.close()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            stats["errors"] += 1
            await asyncio.sleep(0.1)

async def main():
    tasks = [slow_header(i) for i in range(1000)]
    tasks += [slow_reader(i) for i in range(100)]
    tasks += [methods(i) for i in range(4)]
    await asyncio.gather(*tasks)
    print(" ".join(f"{k}={v}" for k, v in stats.items()))

asyncio.run(main())
PY
HOSTILE=$!
sleep 5
echo "== normal traffic under attack: 1,000 slow headers, 100 slow audience readers, made-up methods"
run_load
wait $HOSTILE || true
HOSTILE=
echo "hostile clients: $(cat "$WORK/hostile.out")"
sleep 2
echo "server RSS after attack $round: $(rss)"
done
echo "/metrics: $(curl -s "http://127.0.0.1:$PORT/metrics" | wc -c) bytes, $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -c '^encore_http_requests_total') request series"

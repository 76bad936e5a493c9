#!/usr/bin/env bash
# What `encore-train experiment-report` costs on a large event log: a seeded
# log of EXPOSURES exposure events of experiment "home-list" (4,000
# customers, each always in the same of two variants, 10 items an exposure:
# write_exposures in bench/common.sh, as for bench/events_start.sh) plus
# PURCHASES purchase lines of those customers over about the same two weeks
# is written once, then the report runs RUNS times; each run prints its wall
# time and peak resident memory.
#
#   bench/experiment_report.sh [EXPOSURES] [PURCHASES]   # default 1000000 200000
#
# Environment: WORK [/tmp/encore-experiment-report] RUNS [3]
# REPORT_BIN [built from this checkout]: another encore-train to compare,
# e.g. a build of an earlier commit (alternate the two by hand).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/common.sh"
EXPOSURES="${1:-1000000}"
PURCHASES="${2:-200000}"
set_defaults WORK=/tmp/encore-experiment-report RUNS=3

if [[ -z "${REPORT_BIN:-}" ]]; then
    echo "== building (release)"
    (cd "$ROOT" && cargo build --release --locked -q -p encore-training -p encore-serving --bin encore-train)
fi
REPORT="${REPORT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/encore-train}"
[[ -x "$REPORT" ]] || { echo "$0: REPORT_BIN is not an executable: $REPORT" >&2; exit 2; }

LOG="$WORK/log-$EXPOSURES-$PURCHASES"
if [[ ! -f "$LOG/events-00000002.jsonl" ]]; then
    echo "== writing $EXPOSURES exposures and $PURCHASES purchase lines"
    mkdir -p "$LOG"
    write_exposures "$LOG/events-00000001.jsonl" "$EXPOSURES"
    python3 - "$LOG/events-00000002.jsonl" "$PURCHASES" <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(2)
with open(path, "w") as f:
    for i in range(n):
        t = 1_764_500_000 + rng.randrange(1_200_000)
        e = {"id": f"p-{i}", "type": "purchase", "time": t, "order_id": f"o-{i // 3}",
             "customer": str(12346 + rng.randrange(4000)),
             "item": str(20000 + rng.randrange(3000)), "quantity": 1 + rng.randrange(3),
             "price": round(rng.uniform(1, 20), 2), "received_at": t}
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
fi
echo "== $RUNS reports of $REPORT on $(du -shL "$LOG" | cut -f1) of events"
for run in $(seq "$RUNS"); do
    python3 - "$REPORT" "$LOG" "$run" <<'PY'
import resource, subprocess, sys, time
report, log, run = sys.argv[1:4]
start = time.monotonic()
subprocess.run([report, "experiment-report", "--events", log, "--experiment", "home-list",
                "--format", "json"], check=True, stdout=subprocess.DEVNULL)
seconds = time.monotonic() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"run {run}: {seconds:.1f} s, peak RSS {peak_kib // 1024} MiB")
PY
done

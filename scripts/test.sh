#!/usr/bin/env bash
# Every check, as CI runs it (.ci/run calls exactly this script): formatting,
# lints, docs, the Rust tests, then the Python package: its wheel built with
# maturin, installed into a fresh virtual environment, and its pytest suite;
# then the sharded fit on Apache Spark in local mode (spark/tests: pyspark in a
# virtual environment, Java 17 installed with apt-get if missing); last the
# dashboard in a real browser (tests/browser: headless Chromium and
# chromedriver driven by selenium), Chromium installed with apt-get if missing.
#
# Needs the Rust toolchain (cargo, rustfmt, clippy), Python 3.9 or later
# (`python3`, or $PYTHON) and the package registries; what is missing on the
# Python side (maturin, pytest, pandas, pyarrow, polars, selenium) is installed
# into virtual environments under the target directory, and Chromium with its
# driver from the system's packages (Debian: chromium, chromium-driver; root or
# sudo needed once). The shared datasets are
# read from ../shared/datasets when present.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone builds once: incremental caches would only add 1.4 GB to target/.
export CARGO_INCREMENTAL=0
target="${CARGO_TARGET_DIR:-$PWD/target}"
python="${PYTHON:-python3}"

# Each step's wall time, printed at the end (also when a step fails), so a CI
# log shows where the minutes go.
step_names=() step_secs=() step_start=$SECONDS
step() {
  if [ "${#step_names[@]}" -gt 0 ]; then step_secs+=($((SECONDS - step_start))); fi
  step_names+=("$1")
  step_start=$SECONDS
  echo "== $1"
}
step_summary() {
  local rc=$?
  step_secs+=($((SECONDS - step_start)))
  echo "== step times (s)"
  for i in "${!step_names[@]}"; do printf '%6s  %s\n' "${step_secs[$i]}" "${step_names[$i]}"; done
  printf '%6s  total\n' "$SECONDS"
  return $rc
}
trap step_summary EXIT

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc -D warnings, private items too (broken intra-doc links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --document-private-items

step "cargo test"
# The full-disk test mounts a tmpfs (root only): it is the next step, named.
cargo test --workspace --locked -- --skip a_full_tmpfs_refuses_batches_loses_nothing_and_recovers

step "The event log on a real full disk (mounts a 512 KiB tmpfs: needs root, as CI runs)"
# The same build as the step before (the whole workspace's features): naming
# one package would resolve other features and rebuild half the tree.
cargo test --workspace --locked --test it -- events_full_disk

step "Python: the wheel (maturin), a fresh virtual environment, pytest"
# The build tool is kept between runs; the test environment is made anew.
tools="$target/python-tools"
if [ ! -x "$tools/bin/maturin" ]; then
  "$python" -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.5,<2"
fi
wheels="$target/python-wheels"
rm -rf "$wheels"
# The dev profile, like cargo test: the dependencies are already built with it.
"$tools/bin/maturin" build --locked --manifest-path python/Cargo.toml --out "$wheels"
venv="$target/python-test-venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$wheels"/encore-*.whl "pytest>=7" "polars>=1.0"
# The tests compare the package's answers with encore-train's, built by cargo test.
ENCORE_TRAIN="$target/debug/encore-train" "$venv/bin/python" -m pytest python/tests -q

step "The sharded fit on Apache Spark (local mode, 4 shards): Java 17, pyspark"
# Spark needs a Java runtime: Debian's openjdk-17-jre-headless when missing.
if ! command -v java >/dev/null && command -v apt-get >/dev/null; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
fi
# Kept between runs (pyspark is a large download); the executors' Python is
# this environment's, which has pandas and pyarrow.
spark_venv="${ENCORE_SPARK_VENV:-/tmp/encore-spark-venv}"
if [ ! -x "$spark_venv/bin/python" ] || ! "$spark_venv/bin/python" -c "import pyspark, pandas, pyarrow, pytest" 2>/dev/null; then
  rm -rf "$spark_venv"
  "$python" -m venv "$spark_venv"
  "$spark_venv/bin/pip" install --quiet --disable-pip-version-check "pyspark>=4,<5" "pandas<3" "pyarrow>=14" "pytest>=7"
fi
# The job ships the encore-train that cargo test built to the executors.
PYSPARK_PYTHON="$spark_venv/bin/python" PYSPARK_DRIVER_PYTHON="$spark_venv/bin/python" \
  ENCORE_TRAIN="$target/debug/encore-train" "$spark_venv/bin/python" -m pytest spark/tests -q

step "The dashboard in a browser: headless Chromium, chromedriver, selenium"
have_browser() {
  command -v chromedriver >/dev/null &&
    { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }
}
if ! have_browser && command -v apt-get >/dev/null; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
# Without them the test fails (it is never skipped) and says what to install.
# The binaries are cargo test's (built above with the workspace's features; a
# `cargo build -p ...` would resolve other features and rebuild).
cargo test --workspace --locked --no-run -q
browser_venv="$target/browser-test-venv"
rm -rf "$browser_venv"
"$python" -m venv "$browser_venv"
"$browser_venv/bin/pip" install --quiet --disable-pip-version-check "pytest>=7" "selenium>=4.11"
ENCORE_TRAIN="$target/debug/encore-train" ENCORE_SERVE="$target/debug/encore-serve" \
  "$browser_venv/bin/python" -m pytest tests/browser -q

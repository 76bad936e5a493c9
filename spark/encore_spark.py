"""Encore's sharded fit on Apache Spark.

The driver trains the shared part (``encore-train fit --shared-only``), one
Spark task per shard runs ``encore-train shard`` on an executor, and the
driver assembles the parts into one artifact (``encore-train assemble``),
written to ``--out`` or published into a model store through the promotion
gate. The ``encore-train`` binary is shipped to the executors with the job
(``SparkContext.addFile``); the history,
the work directory and the store are paths that the driver and every
executor see alike (a shared file system). See docs/spark.md.

    spark-submit --master yarn spark/encore_spark.py \\
        --encore-train /opt/encore/encore-train \\
        --input /mnt/shared/history.parquet \\
        --columns customer_id=CustomerID,... --shards 64 \\
        --work /mnt/shared/encore-work --store /mnt/shared/encore-store

A shard that fails (after Spark's own task retries) leaves no part: the
assembly then refuses, naming the shard and its directory, nothing is
published, and the job exits with status 1.
"""

import argparse
import os
import stat
import subprocess
import sys

BINARY = "encore-train"


def part_dir(work, shard, shards):
    """Where shard ``shard`` of ``shards`` writes its part."""
    return os.path.join(work, "parts", f"part-{shard:05d}-of-{shards:05d}")


def shared_dir(work):
    return os.path.join(work, "shared")


def history_args(args):
    """The flags that name the history, the same for every step."""
    out = ["--input", args.input]
    if args.columns:
        out += ["--columns", args.columns]
    if args.events:
        out += ["--events", args.events]
    return out


def run(cmd, what):
    """Runs ``cmd``, passing its output through; raises naming ``what`` on failure."""
    print(f"encore_spark: {what}: {' '.join(cmd)}", flush=True)
    done = subprocess.run(cmd)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed with status {done.returncode}")


def shared_step(args, binary):
    cmd = [binary, "fit", *history_args(args), "--shared-only", "--out", shared_dir(args.work)]
    if args.catalog:
        cmd += ["--catalog", args.catalog]
    if args.config:
        cmd += ["--config", args.config]
    if args.no_eval:
        cmd += ["--no-eval"]
    run(cmd, "shared part")


def shard_task(args):
    """The function each Spark task runs on the numbers of its partition:
    one shard each, with the binary Spark shipped to the executor."""
    history = history_args(args)
    work, shards = args.work, args.shards

    def task(numbers):
        from pyspark import SparkFiles

        binary = SparkFiles.get(BINARY)
        mode = os.stat(binary).st_mode
        if not mode & stat.S_IXUSR:
            os.chmod(binary, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        for shard in numbers:
            cmd = [
                binary, "shard", *history,
                "--shared", shared_dir(work),
                "--shard", str(shard), "--of", str(shards),
                "--out", part_dir(work, shard, shards),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                # Spark retries the task, then fails the job with this message.
                raise RuntimeError(
                    f"shard {shard} of {shards} failed (status {done.returncode}): "
                    f"{done.stderr.strip()}"
                )
            yield shard, done.stdout.strip()

    return task


def shard_step(spark, args, binary):
    """Runs the shards as Spark tasks, one partition (and task) each.
    Returns False if the Spark job failed."""
    sc = spark.sparkContext
    # Copied to every executor, which finds it with SparkFiles.get.
    sc.addFile(binary)
    numbers = sc.parallelize(range(args.shards), args.shards)
    try:
        for shard, said in sorted(numbers.mapPartitions(shard_task(args)).collect()):
            print(f"encore_spark: {said}", flush=True)
        return True
    except Exception as e:  # a Py4J error carrying the task's message
        message = str(e).strip().splitlines()
        print(f"encore_spark: the shard job failed: {message[0] if message else e}",
              file=sys.stderr, flush=True)
        return False


def assemble_step(args, binary):
    """Assembles every expected part; returns encore-train's exit status
    (0 published, 1 refused or failed, 3 refused by the promotion gate)."""
    parts = [part_dir(args.work, s, args.shards) for s in range(args.shards)]
    cmd = [binary, "assemble", "--shared", shared_dir(args.work), "--parts", *parts]
    if args.out:
        cmd += ["--out", args.out]
    else:
        cmd += ["--store", args.store, "--input", args.input]
        if args.columns:
            cmd += ["--columns", args.columns]
        if args.events:
            cmd += ["--events", args.events]
    print(f"encore_spark: assemble: {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd).returncode


def parse(argv):
    p = argparse.ArgumentParser(
        description="Encore's fit with the per-customer lists made on Spark executors")
    p.add_argument("--input", required=True,
                   help="purchase history (Parquet file or directory, or CSV) on a shared path")
    p.add_argument("--columns", help="column map, as for encore-train fit")
    p.add_argument("--catalog", help="item catalog CSV (read by the driver only)")
    p.add_argument("--config", help="training configuration TOML (read by the driver only)")
    p.add_argument("--events", help="event log directory merged into the history")
    p.add_argument("--no-eval", action="store_true", help="skip the holdout evaluation")
    p.add_argument("--shards", type=int, required=True, help="number of shards (Spark tasks)")
    p.add_argument("--work", required=True,
                   help="work directory on a shared path: WORK/shared and WORK/parts/")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="artifact directory to write")
    target.add_argument("--store", help="model store to publish into (through the gate)")
    p.add_argument("--encore-train", default=BINARY,
                   help="the encore-train binary on the driver, shipped to the executors")
    p.add_argument("--master", help="Spark master (default: spark-submit's)")
    p.add_argument("--assemble-only", action="store_true",
                   help="only assemble the parts already in WORK (no Spark job)")
    args = p.parse_args(argv)
    if args.shards < 1:
        p.error("--shards must be at least 1")
    return args


def main(argv=None):
    args = parse(argv)
    binary = args.encore_train
    if os.sep not in binary:
        from shutil import which

        binary = which(binary) or binary
    binary = os.path.abspath(binary)
    args.work = os.path.abspath(args.work)
    if not args.assemble_only:
        shared_step(args, binary)
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName("encore-sharded-fit")
        if args.master:
            builder = builder.master(args.master)
        spark = builder.getOrCreate()
        try:
            shard_step(spark, args, binary)
        finally:
            spark.stop()
    # Whatever the shards did: the assembly checks every part and refuses,
    # naming the shard, if one is missing or damaged.
    status = assemble_step(args, binary)
    if status == 1:
        print("encore_spark: assembly refused; nothing was published", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

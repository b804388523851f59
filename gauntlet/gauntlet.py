#!/usr/bin/env python3
"""The fault gauntlet (scripts/gauntlet runs it; stdlib only).

Each scenario gets its own database on the gauntlet's throwaway Postgres,
runs real `jobline` processes (serve, worker, sweep --every) against it,
injects one kind of fault, waits until every job is settled, and ends with
the invariant check over the whole database: `jobline audit --json` (the
live audit, `shared/src/store/sql/audit.sql`: one copy of the invariants
for the API, the drill and the gauntlet), run with no grace, since a
drained system has nothing still waiting:

  every created job completed, none completed twice, every timeline an
  unbroken chain with one `claimed` event per attempt, the `completed`
  event's attempt the job's attempts, no outbox row left unsent, no claim
  past its heartbeat, no message left in a dead consumer's processing list.
  The audit counts every one of them; the gauntlet's own check is `lost`
  (every id the API accepted is a job), and Python only compares.

One line per scenario with the counts it checked; exit 1 when any fails.

  self      the check itself: each invariant broken on purpose, each must be
            reported (a check that cannot fail proves nothing)
  chaos     sleep jobs (0-50 ms) through 3 workers (8 slots each, and a
            local queue of claims taken ahead); a random worker is
            kill -9'd every few seconds and a new one started
  pg        Postgres fast-stopped mid-run and started again: the API answers
            503 meanwhile, clients retry with their Idempotency-Key, workers
            and the API reconnect by themselves
  queue     the redis server stopped while jobs are created, started again
            (empty) later: every job delivered through the outbox
  dup       every message in the broker delivered three times
  redis_kill
            redis-mode workers kill -9'd while they hold messages: the
            sweeper's recover() empties every dead consumer's processing list
  fuzz      schemathesis, driven by the OpenAPI document, against the API
            while it serves valid traffic: zero 5xx, valid traffic unaffected
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
from harness import CommandFailed, free_port, run  # noqa: E402

SCENARIOS = ["self", "chaos", "pg", "queue", "dup", "redis_kill", "fuzz"]
# What the check counts, 0 when the invariant holds: `lost` (the gauntlet's
# own), `not_completed` (informative in the audit: a violation only where a
# scenario expects every job completed) and every violation of the audit
# (`jobline audit`; `redis_orphaned_processing` only on a redis stack).
INVARIANT_KEYS = [
    "lost",
    "not_completed",
    "completed_twice",
    "event_gaps",
    "status_not_last_event",
    "claims_not_attempts",
    "completed_attempt_not_attempts",
    "handed_back_unclaimed",
    "outbox_stuck",
    "stale_claims",
    "redis_orphaned_processing",
]
NAME_WIDTH = max(len(n) for n in SCENARIOS)


def log(msg: str) -> None:
    print(f"gauntlet: {msg}", file=sys.stderr, flush=True)


# A scenario could not be run (a command failed) or its check failed.
Failed = CommandFailed


def deadline_loop(seconds: float, every: float = 0.2):
    """Yields until `seconds` have passed, pausing `every` between turns."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield
        time.sleep(every)


# --- the environment scripts/gauntlet prepared -------------------------------

BIN = os.environ.get("JOBLINE_BIN", os.path.join(ROOT, "target", "debug", "jobline"))
SERVER_URL = os.environ["GAUNTLET_PG_URL"]  # .../postgres on the gauntlet cluster
PG_DATA = os.environ["GAUNTLET_PG_DATA"]
PG_BIN = os.environ["GAUNTLET_PG_BIN"]
RUN_DIR = os.environ["GAUNTLET_RUN_DIR"]
REDIS_URL = os.environ["REDIS_URL"]
SCHEMATHESIS = os.environ.get("GAUNTLET_SCHEMATHESIS", "schemathesis")


def psql(url: str, sql: str, timeout=60) -> str:
    return run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", url, "-c", sql], timeout=timeout).stdout.strip()


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def redis(*args: str, check=True) -> str:
    return run(["redis-cli", "-u", REDIS_URL, *args], check=check, timeout=60).stdout


# --- HTTP --------------------------------------------------------------------


def http(method: str, url: str, key: str | None = None, body=None, headers=None, timeout=10.0):
    """(status, parsed body or None); status 0 when no answer came."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


# --- one scenario's stack ----------------------------------------------------


class Stack:
    """A database of its own, migrated, with an API key, and the jobline
    processes started against it (all stopped by `close`)."""

    def __init__(self, name: str, queue: str, **env):
        self.name = name
        self.db_url = SERVER_URL.rsplit("/", 1)[0] + "/" + name
        psql(SERVER_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(SERVER_URL, f"CREATE DATABASE {name}")
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "JOBLINE_QUEUE": queue,
            "JOBLINE_QUEUE_NAME": f"gauntlet_{name}",
            "REDIS_URL": REDIS_URL,
            "JOBLINE_HEARTBEAT_INTERVAL_SECONDS": "1",
            "JOBLINE_HEARTBEAT_TIMEOUT_SECONDS": "3",
            "JOBLINE_STALE_PENDING_SECONDS": "3",
            "JOBLINE_OUTBOX_GRACE_SECONDS": "2",
            "JOBLINE_BACKOFF_BASE_SECONDS": "1",
            "JOBLINE_BACKOFF_MAX_SECONDS": "2",
            "JOBLINE_LOG": "warn",
            **env,
        }
        run([BIN, "migrate"], env=self.env, timeout=120)
        out = run([BIN, "keys", "create", "--tenant", "gauntlet", "--scopes", "jobs:read,jobs:write,admin"], env=self.env, timeout=120)
        self.key = out.stdout.strip().splitlines()[-1]
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, str] = {}
        self.base = ""

    def spawn(self, label: str, args: list[str]) -> subprocess.Popen:
        path = os.path.join(RUN_DIR, "logs", f"{self.name}-{label}.log")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        out = open(path, "w")
        p = subprocess.Popen([BIN, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.procs[label] = p
        self.logs[label] = path
        return p

    def serve(self) -> None:
        port = free_port()
        self.spawn("serve", ["serve", "--listen", f"127.0.0.1:{port}"])
        self.base = f"http://127.0.0.1:{port}"
        for _ in deadline_loop(30, 0.05):
            if http("GET", self.base + "/health")[0] == 200:
                return
        raise Failed("jobline serve did not answer /health within 30 s")

    def worker(self, label: str, concurrency: int = 8) -> subprocess.Popen:
        return self.spawn(
            label,
            ["worker", "--concurrency", str(concurrency), "--poll-interval", "0.5", "--grace", "5", "--id", f"{self.name}-{label}"],
        )

    def sweeper(self) -> None:
        self.spawn("sweeper", ["sweep", "--every", "1"])

    def start(self, workers: int, sweeper: bool = True) -> list[str]:
        """The API, the sweeper and `workers` workers (labels w1, w2, ...)."""
        self.serve()
        if sweeper:
            self.sweeper()
        labels = [f"w{i + 1}" for i in range(workers)]
        for label in labels:
            self.worker(label)
        return labels

    def kill9(self, label: str) -> None:
        p = self.procs.pop(label)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def terminate(self, label: str) -> int:
        """SIGTERM, wait; returns the exit code."""
        p = self.procs.pop(label)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
                raise Failed(f"{label} did not stop within 20 s of SIGTERM")
        return p.returncode

    def dead(self) -> list[str]:
        """Processes that exited by themselves."""
        return [label for label, p in self.procs.items() if p.poll() is not None]

    def worker_summaries(self) -> dict[str, int]:
        """Sums the `processed=… dropped=…` lines workers print at exit."""
        total: dict[str, int] = {}
        for label, path in self.logs.items():
            if not label.startswith("w"):
                continue
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith("processed="):
                        for k, v in re.findall(r"(\w+)=(\d+)", line):
                            total[k] = total.get(k, 0) + int(v)
        return total

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for label in list(self.procs):
            try:
                self.terminate(label)
            except Failed:
                pass

    def counts(self) -> tuple[int, int]:
        """(completed, all) jobs."""
        out = psql(self.db_url, "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM jobs")
        done, total = out.split("|")
        return int(done), int(total)

    def wait_completed(self, want: int, within: float) -> None:
        done = total = 0
        for _ in deadline_loop(within, 0.25):
            try:
                done, total = self.counts()
            except Failed:
                continue  # Postgres may be restarting
            if done >= want:
                return
            if self.dead():
                raise Failed(f"processes exited by themselves: {self.dead()} (logs in {RUN_DIR}/logs)")
        raise Failed(f"only {done} of {want} jobs completed within {within:.0f} s ({total} exist)")

    def create_batch(self, jobs: list[dict]) -> list[str]:
        status, body = http("POST", self.base + "/v1/jobs/batch", self.key, {"jobs": jobs}, timeout=30)
        if status != 201:
            raise Failed(f"batch create answered {status}: {json.dumps(body)[:300]}")
        return [j["id"] for j in body["jobs"]]

    def check(self, accepted: set[str], expect_completed: bool = True, wait_outbox: bool = True) -> dict:
        """The invariant check. First gives the relay (the sweeper process,
        every second) time to publish every due outbox row: a row still
        unsent after that is stuck."""
        for _ in deadline_loop(30 if wait_outbox else 0, 0.25):
            if audit(self.env)["violations"]["outbox_stuck"] == 0:
                break
        result = invariants(self.env, accepted)
        broken = []
        for k in INVARIANT_KEYS:
            if k == "not_completed" and not expect_completed:
                continue
            if result.get(k):
                detail = f" {json.dumps(result['by_status'], separators=(',', ':'))}" if k == "not_completed" else ""
                broken.append(f"{k}={result[k]}{detail}")
        unknown = sorted(k for k, n in result["violations"].items() if n and k not in INVARIANT_KEYS)
        if unknown:
            broken.append(f"violations the gauntlet does not know: {unknown}")
        if result["truncated"]:
            broken.append(f"the audit examined only {result['created']} jobs")
        result["broken"] = broken
        return result


def audit(env: dict) -> dict:
    """`jobline audit --json` over every job (since the epoch) of the stack's
    database and queue, with no grace: a snapshot of a drained system, where
    no outbox row or claim may still be waiting. Exit 1 means violations
    (the report says which); anything else without a report is a failure."""
    cmd = [BIN, "audit", "--json", "--since", "0", "--grace", "0", "--timeout", "60", "--max-jobs", "10000000"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise Failed(f"jobline audit exited {p.returncode}: {p.stderr[-2000:]}") from None


def lost(db_url: str, accepted: set[str]) -> int:
    """Accepted ids with no job: COPY them into a temporary table in one psql
    session (any number of ids) and count the missing."""
    ids = "".join(f"{uuid.UUID(i)}\n" for i in sorted(accepted))
    script = (
        "CREATE TEMP TABLE accepted (id uuid);\nCOPY accepted FROM STDIN;\n"
        f"{ids}\\.\n"
        "SELECT count(DISTINCT a.id) FROM accepted a WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.id);\n"
    )
    cmd = ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", db_url, "-f", "-"]
    p = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise Failed(f"the lost check exited {p.returncode}: {p.stderr[-2000:]}")
    return int(p.stdout.strip())


def invariants(env: dict, accepted: set[str]) -> dict:
    """The audit's counts, flat (violations and informative counts by name),
    with `lost`, `created` (jobs examined), `completed` and `by_status`."""
    report = audit(env)
    return {
        **report["informative"],
        **report["violations"],
        "violations": report["violations"],
        "examples": report["examples"],
        "truncated": report["truncated"],
        "created": report["examined"],
        "completed": report["by_status"].get("completed", 0),
        "by_status": report["by_status"],
        "accepted": len(accepted),
        "lost": lost(env["DATABASE_URL"], accepted),
    }


def line(name: str, result: dict, extra: str, seconds: float) -> str:
    verdict = "FAIL" if result.get("broken") else "PASS"
    text = (
        f"{name:<{NAME_WIDTH}} {verdict} created={result['created']} completed={result['completed']} "
        f"completed_twice={result['completed_twice']} lost={result['lost']} "
        f"event_gaps={result['event_gaps']} outbox_stuck={result['outbox_stuck']} {extra} ({seconds:.1f} s)"
    )
    if result.get("broken"):
        text += "\n" + " " * (NAME_WIDTH + 1) + "broken: " + "; ".join(result["broken"])
    return text


def sleep_jobs(n: int, rng: random.Random) -> list[dict]:
    return [{"type": "sleep", "payload": {"ms": rng.randint(0, 50)}, "max_attempts": 50} for _ in range(n)]


def create_all(stack: Stack, jobs: list[dict], threads: int = 4, per_request: int = 100) -> set[str]:
    chunks = [jobs[i : i + per_request] for i in range(0, len(jobs), per_request)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return {i for ids in pool.map(stack.create_batch, chunks) for i in ids}


# --- the scenarios -------------------------------------------------------------


def self_check(size: dict, rng: random.Random) -> tuple[dict, str]:
    """The invariant check must see what it looks for: break each invariant
    on purpose in a database (and a redis queue) of its own and expect the
    audit itself to report every one, under its own key, with the count
    planted."""
    with Stack("gauntlet_self", "redis") as stack:
        stack.serve()
        ids = sorted(create_all(stack, [{"type": "noop", "payload": {}} for _ in range(7)]))
        a, b, c, d, e, f, g = ids
        # Two messages in the processing list of a consumer with no
        # liveness mark (one that died).
        redis("RPUSH", f"{stack.env['JOBLINE_QUEUE_NAME']}:processing:gauntlet-self-dead", "m1", "m2")
        psql(stack.db_url, f"""
            INSERT INTO job_events (job_id, event, from_status, to_status)
            SELECT '{a}', 'completed', 'processing', 'completed' FROM generate_series(1, 2);
            DELETE FROM job_events WHERE job_id = '{b}' AND event = 'created';
            UPDATE outbox SET status = 'failed', sent_at = NULL, attempts = 3, next_attempt_at = now()
            WHERE job_id = '{c}';
            UPDATE jobs SET attempts = 1 WHERE id = '{d}';
            INSERT INTO job_events (job_id, event, from_status, to_status, attempt) VALUES
                ('{e}', 'claimed', 'pending', 'processing', 1),
                ('{e}', 'completed', 'processing', 'completed', 2);
            UPDATE jobs SET status = 'completed', attempts = 1, started_at = now(), completed_at = now()
            WHERE id = '{e}';
            INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor) VALUES
                ('{f}', 'claimed', 'pending', 'processing', 1, 'w1'),
                ('{f}', 'handed_back', 'processing', 'pending', 1, 'w2');
            INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor) VALUES
                ('{g}', 'claimed', 'pending', 'processing', 1, 'gone');
            UPDATE jobs SET status = 'processing', attempts = 1, locked_by = 'gone',
                locked_at = now() - interval '1 hour', heartbeat_at = now() - interval '1 hour',
                started_at = now() - interval '1 hour'
            WHERE id = '{g}';
        """)
        seen = stack.check(set(ids) | {str(uuid.uuid4())}, wait_outbox=False)
        # One invariant key each, with the count planted.
        planted = {
            "lost": 1,  # an accepted id with no job
            "not_completed": 6,  # a-d, f, g: no worker ran them (e was made completed)
            "completed_twice": 1,  # a: two `completed` events
            "event_gaps": 1,  # a: completed without being claimed
            "status_not_last_event": 2,  # a, and b without its `created`
            "claims_not_attempts": 1,  # d: an attempt nobody claimed
            "completed_attempt_not_attempts": 1,  # e: completed by attempt 2 of 1
            "handed_back_unclaimed": 1,  # f: given back by a worker that did not claim it
            "outbox_stuck": 1,  # c: its row never sent
            "stale_claims": 1,  # g: claimed by a worker gone for an hour
            "redis_orphaned_processing": 2,  # the dead consumer's two messages
        }
        problems = []
        if set(planted) != set(INVARIANT_KEYS):
            problems.append(f"no violation planted for {sorted(set(INVARIANT_KEYS) - set(planted))}")
        reported = [
            k for k, n in planted.items()
            if seen.get(k) == n and any(x.split("=", 1)[0] == k for x in seen["broken"])
        ]
        missed = [f"{k} (wanted {n}, got {seen.get(k)})" for k, n in planted.items() if k not in reported]
        if missed:
            problems.append(f"the check missed: {', '.join(missed)} ({seen['broken']})")
        result = {**seen, "broken": problems}
        return result, f"violations_planted={len(planted)} violations_reported={len(reported)}"


def chaos(size: dict, rng: random.Random) -> tuple[dict, str]:
    """kill -9 a random worker every few seconds; start a new one."""
    with Stack("gauntlet_chaos", "postgres") as stack:
        live = stack.start(workers=3)
        serial = len(live)
        accepted: set[str] = set()
        creating = concurrent.futures.ThreadPoolExecutor(1).submit(
            lambda: accepted.update(create_all(stack, sleep_jobs(size["chaos_jobs"], rng)))
        )
        kills = 0
        held: list[int] = []
        end = time.monotonic() + size["chaos_within"]
        while time.monotonic() < end:
            time.sleep(rng.uniform(*size["chaos_every"]))
            if creating.done():
                creating.result()
                done, _ = stack.counts()
                if done >= size["chaos_jobs"]:
                    break
            victim = rng.choice(live)
            stack.kill9(victim)
            # What the dead worker held: its running jobs and its local
            # queue (claims taken ahead of its 8 slots).
            held.append(int(psql(stack.db_url,
                f"SELECT count(*) FROM jobs WHERE status = 'processing' AND locked_by = '{stack.name}-{victim}'")))
            live.remove(victim)
            kills += 1
            serial += 1
            stack.worker(f"w{serial}")
            live.append(f"w{serial}")
            if stack.dead():
                raise Failed(f"processes exited by themselves: {stack.dead()}")
        creating.result()
        stack.wait_completed(size["chaos_jobs"], 60)
        result = stack.check(accepted)
        if len(accepted) != size["chaos_jobs"]:
            result["broken"].append(f"accepted {len(accepted)} of {size['chaos_jobs']}")
        if kills == 0:
            result["broken"].append("no worker was killed")
        return result, (f"kills={kills} held_at_kill={'+'.join(map(str, held))} "
                        f"rerun_after_kill={result['rerun']}")


def pg_restart(size: dict, rng: random.Random) -> tuple[dict, str]:
    """Postgres fast-stopped mid-run, down a few seconds, started again."""
    with Stack("gauntlet_pg", "postgres") as stack:
        stack.start(workers=2)
        stop = threading.Event()
        lock = threading.Lock()
        accepted: dict[str, str] = {}  # idempotency key -> job id
        seen: dict[int, int] = {}
        health_during: list[int] = []

        def client():
            while not stop.is_set():
                key = str(uuid.uuid4())
                body = {"type": "sleep", "payload": {"ms": rng.randint(0, 20)}}
                for _ in deadline_loop(60, 0.1):
                    status, resp = http("POST", stack.base + "/v1/jobs", stack.key, body, {"Idempotency-Key": key})
                    with lock:
                        seen[status] = seen.get(status, 0) + 1
                    if status in (200, 201):
                        with lock:
                            accepted[key] = resp["id"]
                        break
                    if status not in (503, 0) or stop.is_set() and status == 0:
                        break
                time.sleep(0.01)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(size["pg_before"])
        log("pg: stopping Postgres (fast)")
        run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", PG_DATA, "-m", "fast", "-w", "stop"]), timeout=120)
        try:
            for _ in deadline_loop(size["pg_down"], 0.25):
                health_during.append(http("GET", stack.base + "/health")[0])
        finally:
            log("pg: starting Postgres again")
            # `restart` on a stopped server starts it with its last options.
            run(as_postgres([f"{PG_BIN}/pg_ctl", "-D", PG_DATA, "-w", "-t", "30", "-l", os.path.join(os.path.dirname(PG_DATA), "postgres.log"), "restart"]), timeout=120)
        restarted_at = time.monotonic()
        time.sleep(size["pg_after"])
        stop.set()
        for t in threads:
            t.join(timeout=90)
        stack.wait_completed(len(accepted), 60)
        result = stack.check(set(accepted.values()))
        created_after = int(psql(stack.db_url, f"SELECT count(*) FROM jobs WHERE created_at > now() - interval '{time.monotonic() - restarted_at:.3f} seconds'"))
        dup_keys = int(psql(stack.db_url, "SELECT count(*) FROM (SELECT idempotency_key FROM jobs GROUP BY idempotency_key HAVING count(*) > 1) d"))
        other_5xx = {s: n for s, n in seen.items() if s >= 500 and s != 503}
        if not seen.get(503) and 503 not in health_during:
            result["broken"].append("the API never answered 503 while Postgres was down")
        if other_5xx:
            result["broken"].append(f"5xx other than 503: {other_5xx}")
        if created_after == 0:
            result["broken"].append("no job was created after the restart (the API did not reconnect)")
        if dup_keys:
            result["broken"].append(f"{dup_keys} idempotency keys made two jobs")
        if len(accepted) != result["created"]:
            result["broken"].append(f"{len(accepted)} keys accepted, {result['created']} jobs exist")
        health = ",".join(f"{s}x{health_during.count(s)}" for s in sorted(set(health_during)))
        return result, f"answers={json.dumps(dict(sorted(seen.items())), separators=(',', ':'))} health_while_down={health} created_after_restart={created_after}"


def queue_outage(size: dict, rng: random.Random) -> tuple[dict, str]:
    """The redis server stopped while jobs are created; started again (empty)."""
    port = REDIS_URL.rsplit(":", 1)[1]
    with Stack("gauntlet_queue", "redis") as stack:
        stack.start(workers=2)
        n = size["queue_jobs"]
        accepted = create_all(stack, sleep_jobs(n, rng))
        log("queue: stopping redis")
        run([os.path.join(ROOT, "scripts", "services-down"), "redis"], timeout=120)
        slowest = 0.0
        during: set[str] = set()
        try:
            for chunk in range(0, n, 50):
                started = time.monotonic()
                during.update(stack.create_batch(sleep_jobs(min(50, n - chunk), rng)))
                slowest = max(slowest, time.monotonic() - started)
            time.sleep(size["queue_down"])
            unsent = int(psql(stack.db_url, "SELECT count(*) FROM outbox WHERE status <> 'sent'"))
        finally:
            # Up again even when this scenario fails: the next ones need it.
            log("queue: starting redis again")
            run([os.path.join(ROOT, "scripts", "redis-up")], env={**os.environ, "JOBLINE_REDIS_PORT": port}, timeout=120)
        accepted |= during
        accepted |= create_all(stack, sleep_jobs(n, rng))
        stack.wait_completed(len(accepted), 90)
        result = stack.check(accepted)
        if unsent < len(during):
            result["broken"].append(f"only {unsent} outbox rows waited while redis was down ({len(during)} jobs created)")
        return result, f"created_while_down={len(during)} waiting_in_outbox={unsent} slowest_create_while_down={slowest * 1000:.0f}ms"


def duplicates(size: dict, rng: random.Random) -> tuple[dict, str]:
    """Every message in the broker pushed twice more: three deliveries each."""
    with Stack("gauntlet_dup", "redis") as stack:
        stack.serve()
        n = size["dup_jobs"]
        accepted = create_all(stack, sleep_jobs(n, rng))
        queue = stack.env["JOBLINE_QUEUE_NAME"]
        messages = [m for m in redis("LRANGE", queue, "0", "-1").splitlines() if m]
        if len(messages) != n:
            raise Failed(f"{len(messages)} messages in {queue}, expected {n}")
        for i in range(0, len(messages), 200):
            chunk = messages[i : i + 200]
            redis("RPUSH", queue, *chunk)
            redis("RPUSH", queue, *chunk)
        deliveries = int(redis("LLEN", queue).strip())
        for i in range(3):
            stack.worker(f"w{i + 1}")
        stack.wait_completed(n, 90)
        # The duplicates behind the last real message are still queued:
        # wait until the broker has handed everything out.
        for _ in deadline_loop(30, 0.2):
            if int(redis("LLEN", queue).strip()) == 0:
                break
        for label in [label for label in stack.procs if label.startswith("w")]:
            if stack.terminate(label) != 0:
                raise Failed(f"worker {label} exited non-zero")
        summary = stack.worker_summaries()
        result = stack.check(accepted)
        if deliveries != 3 * n:
            result["broken"].append(f"{deliveries} deliveries queued, expected {3 * n}")
        if summary.get("succeeded", 0) != n:
            result["broken"].append(f"workers report {summary.get('succeeded', 0)} succeeded, expected {n}")
        if summary.get("dropped", 0) != 2 * n:
            result["broken"].append(f"workers dropped {summary.get('dropped', 0)} duplicates, expected {2 * n}")
        return result, f"deliveries={deliveries} duplicates_dropped={summary.get('dropped', 0)}"


def processing_lists(queue: str) -> dict[str, int]:
    """Every `<queue>:processing:<consumer>` list in redis and its length."""
    keys = [k for k in redis("--scan", "--pattern", f"{queue}:processing:*").splitlines() if k]
    return {k: int(redis("LLEN", k).strip()) for k in keys}


def redis_kill(size: dict, rng: random.Random) -> tuple[dict, str]:
    """kill -9 redis-mode workers while they hold received messages; start
    new ones. The dead consumers' processing lists must be emptied by the
    sweeper's recover() once their liveness marks expire, and every job
    completed once."""
    # The recover log lines (info) say how many messages came back.
    with Stack("gauntlet_redis_kill", "redis", JOBLINE_LOG="warn,jobline::queue::redis_layout=info") as stack:
        queue = stack.env["JOBLINE_QUEUE_NAME"]
        live = stack.start(workers=3)
        serial = len(live)
        n = size["rkill_jobs"]
        jobs = [{"type": "sleep", "payload": {"ms": rng.randint(*size["rkill_ms"])}, "max_attempts": 50} for _ in range(n)]
        accepted = create_all(stack, jobs)
        held: list[int] = []  # messages in each victim's processing list as it died
        killed_at = time.monotonic()
        for _ in range(size["rkill_kills"]):
            time.sleep(rng.uniform(*size["rkill_every"]))
            if stack.counts()[0] >= n:
                break
            victim = rng.choice(live)
            consumer = f"{stack.name}-{victim}"
            stack.kill9(victim)
            killed_at = time.monotonic()
            live.remove(victim)
            # Dead, it can no longer touch its list: this is what it held.
            held.append(int(redis("LLEN", f"{queue}:processing:{consumer}").strip()))
            if size["rkill_age_marks"]:
                # Stands in for the consumer TTL (60 s, not configurable)
                # running out: the mark of a dead consumer is never
                # refreshed, so it only expires sooner.
                redis("PEXPIRE", f"{queue}:consumer:{consumer}", "1")
            serial += 1
            stack.worker(f"w{serial}")
            live.append(f"w{serial}")
            if stack.dead():
                raise Failed(f"processes exited by themselves: {stack.dead()}")
        stack.wait_completed(n, 90)
        # The dead consumers' lists go back to the queue when their marks
        # expire (the sweeper recovers every second); the live workers take
        # those messages, find the jobs completed and drop them.
        emptied_after = None  # seconds from the last kill
        for _ in deadline_loop(size["rkill_recover_within"], 0.25):
            if sum(processing_lists(queue).values()) == 0 and int(redis("LLEN", queue).strip()) == 0:
                emptied_after = time.monotonic() - killed_at
                break
        for label in [label for label in stack.procs if label.startswith("w")]:
            if stack.terminate(label) != 0:
                raise Failed(f"worker {label} exited non-zero")
        # After the survivors stopped (and handed back their own lists).
        left = processing_lists(queue)
        queue_left = int(redis("LLEN", queue).strip())
        recovered = 0
        with open(stack.logs["sweeper"], errors="replace") as f:
            for text in f:
                if "recovered messages of a consumer" in text:
                    try:
                        recovered += int(json.loads(text).get("fields", {}).get("messages", 0))
                    except ValueError:
                        pass
        summary = stack.worker_summaries()
        result = stack.check(accepted)
        processing_left = sum(left.values())
        if len(accepted) != n:
            result["broken"].append(f"accepted {len(accepted)} of {n}")
        if not held:
            result["broken"].append("no worker was killed")
        elif not any(held):
            result["broken"].append(f"no killed worker held a message ({len(held)} kills)")
        if processing_left:
            nonempty = {k: v for k, v in left.items() if v}
            result["broken"].append(f"processing lists not empty: {nonempty}")
        if queue_left:
            result["broken"].append(f"{queue_left} messages left in {queue}")
        if recovered != sum(held):
            result["broken"].append(f"the sweeper recovered {recovered} messages, the killed workers held {sum(held)}")
        return result, (
            f"kills={len(held)} held_at_kill={'+'.join(map(str, held))} recovered={recovered} "
            f"processing_left={processing_left} queue_left={queue_left} dropped={summary.get('dropped', 0)} "
            f"rerun_after_kill={result['rerun']} "
            f"emptied_after_last_kill={'never' if emptied_after is None else f'{emptied_after:.1f}s'}"
        )


def fuzz(size: dict, rng: random.Random) -> tuple[dict, str]:
    """schemathesis against the API while valid traffic runs."""
    # Only `noop` may be created: the fuzzer's own jobs finish at once (a
    # `sleep` of an hour or a webhook to nowhere would only slow the run).
    with Stack("gauntlet_fuzz", "postgres", JOBLINE_JOB_TYPES="noop") as stack:
        stack.start(workers=1)
        stop = threading.Event()
        valid: dict[int, int] = {}
        accepted: set[str] = set()
        lock = threading.Lock()

        def valid_traffic():
            while not stop.is_set():
                status, body = http("POST", stack.base + "/v1/jobs", stack.key, {"type": "noop", "payload": {"n": rng.randint(0, 9)}})
                if status == 201:
                    got, _ = http("GET", f"{stack.base}/v1/jobs/{body['id']}", stack.key)
                    with lock:
                        accepted.add(body["id"])
                    status = 201 if got == 200 else got
                with lock:
                    valid[status] = valid.get(status, 0) + 1
                time.sleep(0.02)

        traffic = threading.Thread(target=valid_traffic, daemon=True)
        traffic.start()
        # The key belongs to tenant `gauntlet`: the fuzzer's jobs are counted
        # by the invariant check too (they may end failed or cancelled).
        cmd = [
            SCHEMATHESIS, "run", stack.base + "/openapi.json",
            "--url", stack.base,
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {stack.key}",
            "--max-examples", str(size["fuzz_examples"]),
            "--phases", "examples,coverage,fuzzing",
            "--mode", "all",
            "--workers", "2",
            "--seed", str(rng.randint(0, 2**31)),
            "--suppress-health-check", "all",
            "--request-timeout", "10",
            "--no-color",
        ]
        # Run from the run folder: schemathesis keeps a cache in its working directory.
        fuzz_run = subprocess.run(cmd, capture_output=True, text=True, timeout=size["fuzz_within"], cwd=RUN_DIR)
        out_path = os.path.join(RUN_DIR, "logs", "schemathesis.log")
        with open(out_path, "w") as f:
            f.write(fuzz_run.stdout + fuzz_run.stderr)
        stop.set()
        traffic.join(timeout=30)
        served = http("GET", stack.base + "/health")[0]
        # Let the worker settle the valid jobs and whatever the fuzzer made.
        for _ in deadline_loop(60, 0.25):
            out = psql(stack.db_url, "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing') AND run_after <= now()")
            if int(out) == 0:
                break
        result = stack.check(accepted, expect_completed=False)
        completed_ids = set(psql(stack.db_url, "SELECT id FROM jobs WHERE status = 'completed'").split())
        valid_done = len(accepted & completed_ids)
        result["completed"] = result["by_status"].get("completed", 0)
        cases = re.search(r"(\d+) generated", fuzz_run.stdout)
        server_errors = re.findall(r"Server error", fuzz_run.stdout)
        # schemathesis's own crashes (a "Runtime Error" in its generator, e.g.
        # CPython's "AST constructor recursion depth mismatch", seen once on
        # 2026-12-01) are not findings about jobline: counted, not failed.
        # A check's failure prints a FAILURES section, a 5xx "Server error".
        tool_errors = 0
        if fuzz_run.returncode != 0 and "= FAILURES =" not in fuzz_run.stdout and not server_errors:
            tool_errors = len(re.findall(r"Runtime Error", fuzz_run.stdout))
        if fuzz_run.returncode != 0 and not tool_errors:
            result["broken"].append(f"schemathesis exited {fuzz_run.returncode} (see {out_path})")
        if server_errors:
            result["broken"].append(f"{len(server_errors)} server errors (see {out_path})")
        bad_valid = {s: n for s, n in valid.items() if s != 201}
        if bad_valid:
            result["broken"].append(f"valid traffic answered {bad_valid}")
        if valid_done < len(accepted):
            result["broken"].append(f"only {valid_done} of {len(accepted)} valid jobs completed")
        if served != 200:
            result["broken"].append(f"/health answered {served} after the fuzzing")
        if stack.dead():
            result["broken"].append(f"processes exited: {stack.dead()}")
        return result, (
            f"fuzz_cases={cases.group(1) if cases else '?'} server_errors={len(server_errors)} "
            f"valid_requests={sum(valid.values())} valid_ok={valid.get(201, 0)} valid_completed={valid_done}"
            + (f" schemathesis_internal_errors={tool_errors}" if tool_errors else "")
        )


SIZES = {
    "short": dict(
        chaos_jobs=1500, chaos_every=(0.8, 1.5), chaos_within=120,
        pg_before=2.0, pg_down=3.0, pg_after=2.0,
        queue_jobs=150, queue_down=2.0,
        dup_jobs=300,
        rkill_jobs=600, rkill_ms=(100, 400), rkill_kills=3, rkill_every=(0.8, 1.5),
        rkill_age_marks=True, rkill_recover_within=30,
        fuzz_examples=15, fuzz_within=300,
    ),
    "long": dict(
        chaos_jobs=10_000, chaos_every=(1.0, 3.0), chaos_within=900,
        pg_before=5.0, pg_down=5.0, pg_after=5.0,
        queue_jobs=1000, queue_down=5.0,
        dup_jobs=3000,
        rkill_jobs=3000, rkill_ms=(100, 400), rkill_kills=8, rkill_every=(1.0, 3.0),
        rkill_age_marks=False, rkill_recover_within=120,
        fuzz_examples=200, fuzz_within=1800,
    ),
}

RUNNERS = {
    "self": self_check,
    "chaos": chaos,
    "pg": pg_restart,
    "queue": queue_outage,
    "dup": duplicates,
    "redis_kill": redis_kill,
    "fuzz": fuzz,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="the CI version: fewer jobs, shorter faults")
    ap.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {','.join(SCENARIOS)}")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    size = SIZES["short" if args.short else "long"]
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    names = [n for n in args.only.split(",") if n]
    for n in names:
        if n not in RUNNERS:
            ap.error(f"unknown scenario {n!r}")
    log(f"{'short' if args.short else 'long'} run, seed {seed}, binary {BIN}")
    print(f"gauntlet: {'short' if args.short else 'long'} run, seed {seed}", flush=True)
    lines, failed, results = [], 0, {}
    run_started = time.monotonic()
    for name in names:
        log(f"{name}: start")
        started = time.monotonic()
        try:
            result, extra = RUNNERS[name](size, random.Random(f"{seed}-{name}"))
        except Failed as e:
            result, extra = {"created": 0, "completed": 0, **{k: 0 for k in INVARIANT_KEYS}, "broken": [str(e)]}, ""
        text = line(name, result, extra, time.monotonic() - started)
        failed += bool(result["broken"])
        results[name] = {**result, "extra": extra}
        lines.append(text)
        print(f"gauntlet: {text}", flush=True)
    with open(os.path.join(RUN_DIR, "results.json"), "w") as f:
        json.dump({"seed": seed, "short": args.short, "results": results}, f, indent=2)
    print()
    print("\n".join(lines))
    print(f"{len(names) - failed} passed, {failed} failed in {time.monotonic() - run_started:.0f} s (seed {seed}; logs in {RUN_DIR}/logs)")
    if failed:
        # Each scenario draws from its own stream of the seed: running only
        # the failed ones replays them.
        again = ",".join(n for n in names if results[n]["broken"])
        print(f"rerun: scripts/gauntlet{' --short' if args.short else ''} --only {again} --seed {seed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

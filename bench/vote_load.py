"""Vote throughput over real HTTP: N simulated raters doing next + vote against `rlhf serve`.

For each database (a fresh SQLite file, a fresh PostgreSQL database created and dropped
here) it seeds raters and open comparisons, starts the web app exactly as ``rlhf serve``
does (uvicorn, in a subprocess, on a free port of 127.0.0.1), and lets N asyncio raters
with bearer tokens vote for a fixed time, in two ways one after the other on the same
server: two requests per pair (GET /api/comparisons/next, then POST /api/votes), and one
(POST /api/votes?next=true answers the vote and the next pair). "after vote" is what a
rater waits from sending a vote to having the next pair: the two requests' sum, or the one
round trip. Then it checks the database: every acknowledged vote must be stored (lost) and
no comparison may hold more votes than it asked for (duplicated).

As the ceiling it runs, in the same way, a bare FastAPI endpoint that does one INSERT into
a one-table database, before the app's run and after it, and prints the ratio to the mean
of the two (and both, so a machine whose speed drifted during the run shows it). Prints
figures; asserts nothing about time.

    python bench/vote_load.py [--raters 50] [--seconds 20] [--databases sqlite,postgresql] [--think-s 0]

With ``--think-s``, each rater pauses (exponentially, around that mean) before each pair,
as a person reading two answers does: the latency a rater sees at a realistic load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("RLHF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "bench-password"
SECRET = "bench-secret-key-only-for-this-benchmark"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fresh_database(kind: str, workdir: Path, label: str):
    """A new empty database URL; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{label}.db'}"
        return
    name = f"rlhf_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        from rlhf import db

        db.get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, raters: int, comparisons: int) -> None:
    """Raters (cheap password hashes: the bench logs in once per rater) and open comparisons."""
    from argon2 import PasswordHasher

    from rlhf import db
    from rlhf.models import Checkpoint, CheckpointStatus, Comparison, Prompt, Response, Role, User

    db.migrate(url)
    engine = db.get_engine(url)
    pw = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(User),
            [{"name": f"rater{i}", "role": Role.rater, "password_hash": pw, "active": True} for i in range(raters)],
        )
        ckpt = conn.execute(
            sa.insert(Checkpoint).returning(Checkpoint.id),
            [{"name": "bench", "path": "org/bench", "status": CheckpointStatus.serving, "metrics": {}}],
        ).scalar_one()
        conn.execute(
            sa.insert(Prompt),
            [{"messages": [{"role": "user", "content": f"question {i}"}], "tags": []} for i in range(comparisons)],
        )
        conn.execute(
            sa.insert(Response),
            [
                {"prompt_id": p, "checkpoint_id": ckpt, "text": f"answer {p}{side}", "params": {}, "finished": True}
                for p in range(1, comparisons + 1)
                for side in "ab"
            ],
        )
        conn.execute(
            sa.insert(Comparison),
            [
                {"prompt_id": p, "response_a_id": 2 * p - 1, "response_b_id": 2 * p, "target_votes": 1}
                for p in range(1, comparisons + 1)
            ],
        )
    with engine.connect() as conn:
        # Planner statistics, as autovacuum would have them a minute after an import; without them
        # PostgreSQL picks a plan for the hand-out query that is several times slower.
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()


@contextmanager
def server(argv: list[str], env: dict[str, str], port: int, log: Path):
    """A subprocess listening on 127.0.0.1:port, its output in ``log``; stopped (SIGINT, then kill) on exit."""
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start within 60 s") from None
                time.sleep(0.2)
        try:
            yield
        except Exception:
            # The temporary folder goes with the exception: show why the server answered as it did.
            print(f"end of the server log ({log.name}):\n{log.read_text()[-4000:]}", file=sys.stderr)
            raise
        if proc.poll() is not None:
            raise RuntimeError(f"server died during the run: {log.read_text()[-2000:]}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _send(client: httpx.AsyncClient, stats: dict, method: str, url: str, **kwargs) -> httpx.Response | None:
    """One request, retried on a dropped connection (a keep-alive closed under us) as a real client would:
    a vote keeps its Idempotency-Key, so a retry can never store it twice."""
    for _ in range(3):
        try:
            return await client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            stats["errors"][f"{method} {type(exc).__name__}, retried"] += 1
    return None


async def _rater(
    client: httpx.AsyncClient, token: str, deadline: float, stats: dict, think_s: float, one_trip: bool = False
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(abs(hash(token)) % 2**32)
    if one_trip:
        await _rater_one_trip(client, headers, rng, deadline, stats, think_s)
        return
    pending_vote_ms = None  # the last vote's round trip: its next pair arrives with the following GET
    while time.monotonic() < deadline:
        if think_s:  # a person reads both answers before voting: exponential around the mean
            await asyncio.sleep(rng.exponential(think_s))
        t0 = time.perf_counter()
        r = await _send(client, stats, "GET", "/api/comparisons/next", headers=headers)
        t1 = time.perf_counter()
        stats["next_ms"].append((t1 - t0) * 1000)
        if pending_vote_ms is not None:
            stats["after_vote_ms"].append(pending_vote_ms + (t1 - t0) * 1000)
        if r is not None and r.status_code == 204:
            stats["ran_out"] += 1
            return
        if r is None or r.status_code != 200:
            stats["errors"][f"next {r.status_code if r is not None else 'gave up'}"] += 1
            continue
        cid = r.json()["comparison_id"]
        v = await _send(
            client,
            stats,
            "POST",
            "/api/votes",
            json={"comparison_id": cid, "choice": "a"},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        t2 = time.perf_counter()
        stats["vote_ms"].append((t2 - t1) * 1000)
        pending_vote_ms = (t2 - t1) * 1000
        if v is not None and v.status_code in (200, 201):
            stats["acked"].append(v.json()["id"])
        else:
            stats["errors"][f"vote {v.status_code if v is not None else 'gave up'}"] += 1


async def _rater_one_trip(client, headers: dict, rng, deadline: float, stats: dict, think_s: float) -> None:
    r = await _send(client, stats, "GET", "/api/comparisons/next", headers=headers)
    if r is None or r.status_code != 200:
        stats["ran_out"] += 1
        return
    pair = r.json()
    while time.monotonic() < deadline:
        if think_s:
            await asyncio.sleep(rng.exponential(think_s))
        t0 = time.perf_counter()
        v = await _send(
            client,
            stats,
            "POST",
            "/api/votes?next=true",
            json={"comparison_id": pair["comparison_id"], "choice": "a"},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        stats["after_vote_ms"].append((time.perf_counter() - t0) * 1000)
        if v is None or v.status_code not in (200, 201):
            stats["errors"][f"vote+next {v.status_code if v is not None else 'gave up'}"] += 1
            return
        body = v.json()
        stats["acked"].append(body["vote"]["id"])
        if body["next"] is None:
            stats["ran_out"] += 1
            return
        pair = body["next"]


async def load_rlhf(port: int, raters: int, seconds: float, think_s: float = 0.0, one_trip: bool = False) -> dict:
    stats = {"next_ms": [], "vote_ms": [], "after_vote_ms": [], "acked": [], "errors": Counter(), "ran_out": 0}
    limits = httpx.Limits(max_connections=raters + 5, max_keepalive_connections=raters + 5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
        # Logging in is set-up, not the load measured: a few at a time, as 50 password checks at
        # once, each holding a pooled connection while the login throttle asks for another, can
        # drain the pool on a busy machine.
        logins = asyncio.Semaphore(8)

        async def token(i: int) -> str:
            basic = base64.b64encode(f"rater{i}:{PASSWORD}".encode()).decode()
            async with logins:
                r = await client.post("/api/token", headers={"Authorization": f"Basic {basic}"})
            r.raise_for_status()
            return r.json()["access_token"]

        tokens = await asyncio.gather(*(token(i) for i in range(raters)))
        start = time.monotonic()
        await asyncio.gather(*(_rater(client, t, start + seconds, stats, think_s, one_trip) for t in tokens))
        stats["elapsed"] = time.monotonic() - start
    return stats


async def load_bare(port: int, raters: int, seconds: float) -> dict:
    stats = {"insert_ms": [], "acked": 0, "errors": Counter()}
    limits = httpx.Limits(max_connections=raters + 5, max_keepalive_connections=raters + 5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:

        async def one(i: int, deadline: float) -> None:
            n = 0
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                r = await _send(client, stats, "POST", "/vote", json={"rater": i, "comparison": n, "choice": "a"})
                stats["insert_ms"].append((time.perf_counter() - t0) * 1000)
                n += 1
                if r is not None and r.status_code == 201:
                    stats["acked"] += 1
                else:
                    stats["errors"][str(r.status_code if r is not None else "gave up")] += 1

        start = time.monotonic()
        await asyncio.gather(*(one(i, start + seconds) for i in range(raters)))
        stats["elapsed"] = time.monotonic() - start
    return stats


class BareVote(BaseModel):
    rater: int
    comparison: int
    choice: str


def bare_app(url: str):
    """The ceiling: one sync endpoint, one INSERT, one commit, same engine setup as the app."""
    from fastapi import FastAPI

    from rlhf import db

    engine = db.get_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        "bare_vote",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rater", sa.Integer),
        sa.Column("comparison", sa.Integer),
        sa.Column("choice", sa.String(16)),
    )
    meta.create_all(engine)
    app = FastAPI()

    @app.get("/api/health")
    def health():
        return {"status": "ok"}

    @app.post("/vote", status_code=201)
    def vote(body: BareVote):
        with engine.begin() as conn:
            new_id = conn.execute(sa.insert(table).returning(table.c.id), body.model_dump()).scalar_one()
        return {"id": new_id}

    return app


def verify(url: str, acked: list[int]) -> tuple[int, int]:
    """(lost, duplicated): acknowledged votes missing from the table; votes beyond a comparison's target."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = {row[0] for row in conn.execute(sa.text("SELECT id FROM vote"))}
        over = conn.execute(
            sa.text(
                "SELECT COALESCE(SUM(n - t), 0) FROM (SELECT COUNT(*) AS n, MAX(c.target_votes) AS t FROM vote v "
                "JOIN comparison c ON c.id = v.comparison_id GROUP BY v.comparison_id) per WHERE n > t"
            )
        ).scalar_one()
        repeats = conn.execute(
            sa.text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM vote "
                "GROUP BY rater_id, comparison_id) per WHERE n > 1"
            )
        ).scalar_one()
    engine.dispose()
    return len(set(acked) - stored), int(over) + int(repeats)


def pct(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return f"{p50:.0f}/{p95:.0f}/{p99:.0f}"


def measure_bare(kind: str, args, workdir: Path, label: str) -> dict:
    with fresh_database(kind, workdir, f"bare{label}") as url:
        port = free_port()
        bare_cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", url, "--port", str(port)]
        with server(bare_cmd, {"PYTHONPATH": str(ROOT)}, port, workdir / f"{kind}-bare{label}.log"):
            return asyncio.run(load_bare(port, args.raters, args.seconds))


def run_one(kind: str, args, workdir: Path) -> list[dict]:
    """Both flows on one server and database (two requests per vote, then one), and the bare ceiling
    measured before and after them: the ratio is to their mean, so a machine that slows down or
    speeds up during the run moves the ceiling with it (both are printed)."""
    flows = {}
    before = measure_bare(kind, args, workdir, "-before")
    with fresh_database(kind, workdir, "app") as url:
        seed(url, args.raters, args.comparisons)
        port = free_port()
        env = {
            "RLHF_DATABASE_URL": url,
            "RLHF_DATA_DIR": str(workdir / kind),
            "RLHF_BROKER_URL": "",
            "RLHF_SECRET_KEY": SECRET,
            "RLHF_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        serve = [sys.executable, "-c", f"from rlhf_cli.web import serve; serve(host='127.0.0.1', port={port})"]
        with server(serve, env, port, workdir / f"{kind}-app.log"):
            for flow, one_trip in (("2 requests", False), ("next=true", True)):
                flows[flow] = asyncio.run(load_rlhf(port, args.raters, args.seconds, args.think_s, one_trip))
        acked = [vote_id for stats in flows.values() for vote_id in stats["acked"]]
        lost, duplicated = verify(url, acked)
    after = measure_bare(kind, args, workdir, "-after")
    ceilings = [b["acked"] / b["elapsed"] for b in (before, after)]
    bare_per_s = sum(ceilings) / 2
    bare = {"insert_ms": before["insert_ms"] + after["insert_ms"], "errors": before["errors"] + after["errors"]}
    out = []
    for flow, full in flows.items():
        votes_per_s = len(full["acked"]) / full["elapsed"]
        out.append(
            {
                "kind": kind,
                "flow": flow,
                "votes_per_s": votes_per_s,
                "after": pct(full["after_vote_ms"]),
                "after_p50": float(np.percentile(full["after_vote_ms"], 50)) if full["after_vote_ms"] else 0.0,
                "acked": len(full["acked"]),
                "lost": lost,
                "duplicated": duplicated,
                "errors": dict(full["errors"]),
                "ran_out": full["ran_out"],
                "bare_per_s": bare_per_s,
                "bare_before_after": ceilings,
                "bare": pct(bare["insert_ms"]),
                "bare_errors": dict(bare["errors"]),
                "log": (workdir / f"{kind}-app.log").read_text()[-1500:],
                "ratio": votes_per_s / bare_per_s if bare_per_s else float("nan"),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--comparisons", type=int, default=20_000, help="open comparisons seeded (target 1 vote)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--think-s",
        type=float,
        default=0.0,
        help="mean time a rater takes per pair (0: raters vote as fast as answers come back)",
    )
    parser.add_argument("--serve-bare", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        import uvicorn

        uvicorn.run(bare_app(args.serve_bare), host="127.0.0.1", port=args.port, log_level="warning")
        return

    print(
        f"{args.raters} raters, {args.seconds:.0f} s per run, think time {args.think_s:g} s, "
        f"{os.cpu_count()} CPUs (load generator and server share them)",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="rlhf-bench-") as tmp:
        for kind in args.databases.split(","):
            results += run_one(kind, args, Path(tmp))
            print(f"{kind}: done", flush=True)
    print()
    print(
        "lost and dup count both flows of a database together; 'after vote' is the wait from sending a vote "
        "to having the next pair"
    )
    print(
        f"{'database':11} {'flow':11} {'votes/s':>8} {'after vote ms p50/95/99':>24} {'acked':>7} {'lost':>5} "
        f"{'dup':>4} {'bare ins/s':>10} {'ratio':>6}"
    )
    for r in results:
        print(
            f"{r['kind']:11} {r['flow']:11} {r['votes_per_s']:8.1f} {r['after']:>24} {r['acked']:7d} "
            f"{r['lost']:5d} {r['duplicated']:4d} {r['bare_per_s']:10.1f} {r['ratio']:6.2f}"
        )
        if r["errors"] or r["bare_errors"] or r["ran_out"]:
            print(
                f"  {r['kind']} {r['flow']}: errors {r['errors'] or '-'}, bare errors {r['bare_errors'] or '-'}, "
                f"raters who ran out of comparisons: {r['ran_out']}"
            )
            if r["log"].strip() and r["errors"]:
                print(f"  end of the {r['kind']} server log:\n{r['log']}")
    for kind in dict.fromkeys(r["kind"] for r in results):
        before, after = next(r for r in results if r["kind"] == kind)["bare_before_after"]
        print(
            f"{kind}: bare ceiling {before:.1f} inserts/s before the app's run, {after:.1f} after (ratio to the mean)"
        )
        two, one = (
            next(r for r in results if r["kind"] == kind and r["flow"] == f) for f in ("2 requests", "next=true")
        )
        if two["votes_per_s"] and two["after_p50"]:
            print(
                f"{kind}: next=true gives {one['votes_per_s'] / two['votes_per_s']:.2f}x the votes/s of two "
                f"requests, and {one['after_p50'] / two['after_p50']:.2f}x the median wait for the next pair"
            )


if __name__ == "__main__":
    main()

"""How the data paths grow with the number of votes: time and peak memory at 10k, 100k and 1M votes.

For each size it grows a fresh database in the shape the product writes (50 raters, three
votes per pair with a realistic split of choices, about 15 % of pairs still open with 0–2
votes, every vote's lease ended, a rationale on one vote in ten, counters that match the
votes), then measures each operation in a fresh Python process, so its peak memory
(``ru_maxrss``) is its own:

- ``export jsonl`` / ``export parquet``: :func:`rlhf.services.dataset.export` to a file;
- ``create run``: :func:`rlhf.services.runs.create_run` for DPO (what the request does: the votes
  frozen); ``run data``: the worker's first phase on that run (rows built, hashed, written to the
  trainer's data file: :func:`rlhf.services.run_data.write_run_rows`); the run is removed after;
- ``stats``: :func:`rlhf.services.stats.overall_stats` (the counts);
- ``api stats``: :func:`rlhf.services.stats.engineer_stats`: what ``GET /api/stats`` answers an
  engineer (the counts, the rater-quality measure and their own counts), warm: the median of
  three calls after a first;
- ``leaderboard``: the Bradley-Terry fit with 200 bootstrap resamples;
- ``hand-out``: :func:`rlhf.services.comparisons.next_for_rater` for 40 raters, median and p95
  (the service behind ``GET /api/comparisons/next``, without HTTP);
- ``vote``: :func:`rlhf.services.votes.record_vote` on those pairs, median.

Then it prints one table with the growth factor from each size to the next. Prints figures;
asserts nothing about time.

    python bench/data_scale.py [--sizes 10000,100000,1000000] [--database postgresql|sqlite]
    python bench/data_scale.py --grow-only --votes N --database-url URL
    python bench/data_scale.py --measure-at URL

``--grow-only`` grows the database at URL (migrated first if empty) and leaves it, so the
same data can be measured from outside (``rlhf export``, ``rlhf serve`` with a load test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.vote_load import fresh_database  # noqa: E402
from rlhf import db  # noqa: E402
from rlhf.models import (  # noqa: E402
    Assignment,
    Checkpoint,
    CheckpointKind,
    CheckpointStatus,
    Choice,
    Comparison,
    ComparisonStatus,
    Prompt,
    Response,
    Role,
    User,
    Vote,
)

RATERS = 50
VOTES_PER_PAIR = 3
OPEN_SHARE = 0.15
# A realistic split: most votes decisive, some ties, a few "both bad".
CHOICES = [Choice.a, Choice.b, Choice.tie, Choice.both_bad]
CHOICE_P = [0.46, 0.40, 0.09, 0.05]
BATCH = 10_000
# "create run" is the request (votes frozen); "run data" the worker's first phase on that run (rows
# built, hashed and written to the trainer's data file).
OPERATIONS = [
    "export jsonl",
    "export parquet",
    "create run",
    "run data",
    "stats",
    "api stats",
    "leaderboard",
    "hand-out",
    "vote",
]


def _rows(table, rows: list[dict], conn) -> None:
    """Insert plain rows, with the model's own defaults for what they leave out (a Core insert skips them)."""
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in table.model_fields.items()
        if name != "id" and not field.is_required()
    }
    for i in range(0, len(rows), BATCH):
        conn.execute(sa.insert(table.__table__), [{**defaults, **row} for row in rows[i : i + BATCH]])


def grow(url: str, votes: int, seed: int = 0) -> dict[str, int]:
    """Add ``votes`` votes (and the raters, prompts, responses, pairs and leases they need) to ``url``."""
    db.migrate(url)
    rng = np.random.default_rng(seed)
    engine = sa.create_engine(url)
    done_pairs = int(votes / (VOTES_PER_PAIR + OPEN_SHARE / (1 - OPEN_SHARE) * 1.0))
    open_pairs = int(done_pairs * OPEN_SHARE / (1 - OPEN_SHARE))
    pairs = done_pairs + open_pairs
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        base_user = conn.execute(sa.select(sa.func.coalesce(sa.func.max(User.__table__.c.id), 0))).scalar_one()
        _rows(
            User,
            [
                dict(
                    name=f"scale-rater-{uuid.uuid4().hex[:8]}-{i}", role=Role.rater, password_hash="!", created_at=start
                )
                for i in range(RATERS)
            ],
            conn,
        )
        raters = np.arange(base_user + 1, base_user + RATERS + 1)
        names = [f"scale-policy-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
        _rows(
            Checkpoint,
            [
                dict(name=n, kind=CheckpointKind.policy, status=CheckpointStatus.serving, path=n, created_at=start)
                for n in names
            ],
            conn,
        )
        ckpts = [
            conn.execute(sa.select(Checkpoint.__table__.c.id).where(Checkpoint.__table__.c.name == n)).scalar_one()
            for n in names
        ]
        first_prompt = conn.execute(sa.select(sa.func.coalesce(sa.func.max(Prompt.__table__.c.id), 0))).scalar_one()
        first_response = conn.execute(sa.select(sa.func.coalesce(sa.func.max(Response.__table__.c.id), 0))).scalar_one()
        first_pair = conn.execute(sa.select(sa.func.coalesce(sa.func.max(Comparison.__table__.c.id), 0))).scalar_one()
        # One prompt per two pairs; each pair its own two answers, one from each policy.
        n_prompts = (pairs + 1) // 2
        _rows(
            Prompt,
            [
                dict(
                    messages=[{"role": "user", "content": f"Question {first_prompt + i + 1}: name a colour."}],
                    tags=[],
                    created_at=start,
                )
                for i in range(n_prompts)
            ],
            conn,
        )
        lengths = rng.integers(20, 400, size=2 * pairs)
        _rows(
            Response,
            [
                dict(
                    prompt_id=first_prompt + 1 + (i // 2) // 2,
                    checkpoint_id=ckpts[i % 2],
                    text="word " * (int(lengths[i]) // 5),
                    params={},
                    finished=True,
                    created_at=start,
                )
                for i in range(2 * pairs)
            ],
            conn,
        )
        counts = np.concatenate([np.full(done_pairs, VOTES_PER_PAIR), rng.integers(0, VOTES_PER_PAIR, open_pairs)])
        rng.shuffle(counts)
        _rows(
            Comparison,
            [
                dict(
                    prompt_id=first_prompt + 1 + i // 2,
                    response_a_id=first_response + 2 * i + 1,
                    response_b_id=first_response + 2 * i + 2,
                    target_votes=VOTES_PER_PAIR,
                    vote_count=int(c),
                    status=ComparisonStatus.closed if c >= VOTES_PER_PAIR else ComparisonStatus.open,
                    created_at=start + timedelta(seconds=i),
                )
                for i, c in enumerate(counts)
            ],
            conn,
        )
        vote_rows, lease_rows = [], []
        choices = rng.choice(len(CHOICES), size=int(counts.sum()), p=CHOICE_P)
        k = 0
        for i, c in enumerate(counts):
            when = start + timedelta(seconds=i, milliseconds=1)
            for rater in rng.choice(raters, size=int(c), replace=False):
                swapped = bool(rng.random() < 0.5)
                vote_rows.append(
                    dict(
                        comparison_id=first_pair + 1 + i,
                        rater_id=int(rater),
                        choice=CHOICES[choices[k]],
                        shown_swapped=swapped,
                        rationale="clearer" if rng.random() < 0.1 else None,
                        source="human",
                        created_at=when,
                    )
                )
                lease_rows.append(
                    dict(comparison_id=first_pair + 1 + i, rater_id=int(rater), swapped=swapped, expires_at=when)
                )
                k += 1
            if len(vote_rows) >= BATCH:
                _rows(Vote, vote_rows, conn)
                _rows(Assignment, lease_rows, conn)
                vote_rows, lease_rows = [], []
        _rows(Vote, vote_rows, conn)
        _rows(Assignment, lease_rows, conn)
    # A live database's tables have planner statistics (autovacuum keeps them); one just filled in
    # bulk has none yet, and its plans would be for empty tables.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if url.startswith("postgresql") else "ANALYZE"))
    engine.dispose()
    return {"votes": int(counts.sum()), "pairs": pairs, "open_pairs": int((counts < VOTES_PER_PAIR).sum())}


def measure(op: str, url: str) -> dict:
    """One operation, timed, in this process (run by ``--measure`` in a fresh one)."""
    from sqlmodel import Session, select

    from rlhf.services import comparisons, dataset, leaderboard, runs, stats, votes

    engine = db.get_engine(url)
    extra: dict = {}
    with Session(engine) as session, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if op.startswith("export"):
            fmt = op.split()[1]
            extra["rows"] = dataset.export(session=session, path=Path(tmp) / f"x.{fmt}", fmt=fmt)
        elif op == "create run":
            run = runs.create_run(session=session, algorithm="dpo")
            session.commit()
            extra["votes"], extra["run_id"] = run.snapshot["votes"], run.id
        elif op == "run data":
            from rlhf.services.run_data import write_run_rows

            run = runs.get_run(session=session, run_id=int(os.environ["RLHF_BENCH_RUN_ID"]))
            started = time.perf_counter()  # the run's own look-up is not the phase
            extra["rows"] = write_run_rows(session=session, run=run, path=Path(tmp) / "data.jsonl").rows
        elif op == "stats":
            stats.overall_stats(session=session)
        elif op == "api stats":
            # The grown database holds raters only; whose counts come under "mine" costs the same.
            someone = session.exec(select(User.id).order_by(User.id)).first() or 0
            # A serving process is warm (connections open, statements compiled): one call first,
            # then the median of three.
            stats.engineer_stats(session=session, rater_id=someone)
            calls = []
            for _ in range(3):
                t = time.perf_counter()
                stats.engineer_stats(session=session, rater_id=someone)
                calls.append(time.perf_counter() - t)
            started = time.perf_counter() - statistics.median(calls)
        elif op == "leaderboard":
            leaderboard.leaderboard(session=session, bootstrap=200)
        elif op in ("hand-out", "vote"):
            raters = session.exec(select(User).where(User.role == Role.rater).limit(40)).all()
            waits, handouts = [], []
            for rater in raters:
                t = time.perf_counter()
                handouts.append((rater, comparisons.next_for_rater(session=session, rater=rater)))
                waits.append(time.perf_counter() - t)
            if op == "vote":
                waits = []
                for rater, handout in handouts:
                    if handout is None:
                        continue
                    t = time.perf_counter()
                    votes.record_vote(session=session, rater=rater, comparison_id=handout.comparison_id, choice="a")
                    waits.append(time.perf_counter() - t)
            extra["median_ms"] = round(1000 * statistics.median(waits), 1)
            extra["p95_ms"] = round(1000 * float(np.percentile(waits, 95)), 1)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **extra,
    }


def _measure_in_child(op: str, url: str, run_id: int | None = None) -> dict:
    env = {**os.environ, "RLHF_BENCH_RUN_ID": str(run_id or "")}
    out = subprocess.run(
        [sys.executable, __file__, "--measure", op, "--database-url", url],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_all(url: str) -> dict[str, dict]:
    """Every operation on the database at ``url``, each in a fresh process; the run made is removed."""
    results: dict[str, dict] = {}
    run_id = None
    try:
        for op in OPERATIONS:
            results[op] = _measure_in_child(op, url, run_id)
            run_id = results[op].get("run_id", run_id)
            print(f"  {op}: {_figure(results[op])}", flush=True)
    finally:
        if run_id is not None:
            with db.get_engine(url).begin() as conn:
                conn.execute(sa.text("DELETE FROM snapshot_vote WHERE run_id = :r"), {"r": run_id})
                conn.execute(sa.text("DELETE FROM trainingrun WHERE id = :r"), {"r": run_id})
    return results


def _figure(result: dict) -> str:
    if "median_ms" in result:
        return f"{result['median_ms']} / {result['p95_ms']} ms"
    return f"{result['seconds']} s, {result['peak_mb']} MB"


def _growth(a: dict, b: dict) -> str:
    key = "median_ms" if "median_ms" in a else "seconds"
    return f"×{b[key] / a[key]:.1f}" if a[key] else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="vote counts, comma-separated")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--grow-only", action="store_true", help="only grow the database at --database-url")
    parser.add_argument("--votes", type=int, help="with --grow-only: how many votes to add")
    parser.add_argument("--database-url")
    parser.add_argument("--measure-at", metavar="URL", help="only measure the database at URL (grown before)")
    parser.add_argument("--measure", choices=OPERATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.database_url)))
        return
    if args.measure_at:
        db.migrate(args.measure_at)  # a database grown by an older tree gets this one's indexes
        size = db.get_engine(args.measure_at).connect().execute(sa.text("SELECT count(*) FROM vote")).scalar()
        print(f"{size} votes at {args.measure_at}", flush=True)
        results = {size: measure_all(args.measure_at)}
        _table(args.database, [size], results)
        return
    if args.grow_only:
        if not args.votes or not args.database_url:
            parser.error("--grow-only needs --votes N and --database-url URL")
        started = time.perf_counter()
        shape = grow(args.database_url, args.votes)
        print(f"grew {args.database_url}: {shape} in {time.perf_counter() - started:.0f} s")
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            with fresh_database(args.database, Path(tmp), str(size)) as url:
                started = time.perf_counter()
                shape = grow(url, size)
                print(f"{size} votes: grew {shape} in {time.perf_counter() - started:.0f} s", flush=True)
                results[size] = measure_all(url)
    _table(args.database, sizes, results)


def _table(database: str, sizes: list[int], results: dict[int, dict[str, dict]]) -> None:
    print(f"\n{database}, {os.cpu_count()} cores, {datetime.now():%Y-%m-%d}\n")
    header = ["operation"] + [f"{s:,} votes" for s in sizes] + [f"growth {a:,}→{b:,}" for a, b in zip(sizes, sizes[1:])]
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for op in OPERATIONS:
        cells = [_figure(results[s][op]) for s in sizes]
        growth = [_growth(results[a][op], results[b][op]) for a, b in zip(sizes, sizes[1:])]
        print(f"| {op} | " + " | ".join(cells + growth) + " |")
    print("\nhand-out and vote: median / p95 over 40 raters; the rest: wall time and the process's peak memory")


if __name__ == "__main__":
    main()

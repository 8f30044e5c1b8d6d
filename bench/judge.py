"""AI judges: people's votes a good judge saves, and a judge's throughput on the embedded engine.

**Part 1: people alone against people plus a judge.** On the tiny model, as in
``bench/active_learning.py``: each round a generation job opens ``--open`` random pairs,
simulated people (``contains:please``, ``--noise`` flipping a decided vote) vote on
``--batch`` of the open pairs (oldest first), and a judge job asks the test judge
(``tests/judge_server.py``: the same rule, wrong on 10 % of pairs, saying "A" whatever A holds
on 20 %, asked in both orders) about every pair it has not judged yet, open or voted. The
pairs both voted on are the overlap it earns its label_p on (``judge_min_overlap`` is set to
:data:`MIN_OVERLAP` for the bench's worlds, through ``RLHF_JUDGE_MIN_OVERLAP``). Two reward
models then train on the same world (``--steps`` steps, from the base model): ``people`` on
``labels="human"``, ``+judge`` on ``labels="human,judge"`` (a person's vote wins its pair; the
judge's votes make rows for the pairs no person voted on, once they train: its label_p
earned and, where the product's audit asks for it, shown better than a coin flip). Both
arms see the same people's votes and start from the same seeded scoring head, so they
differ only in the judge's rows; a round where those are none trains one model for both.
Votes counted are people's only.
Accuracy is measured on active_learning's held-out pairs, labelled by the rule without noise.
(The product puts pairs the judge voted on last in people's queue; the simulated people take
open pairs by id, so here they vote on the same pairs in both arms.)

**Part 2: throughput.** A world with the tiny model serving opens ``--pairs`` pairs; a judge
registered as that checkpoint (no ``RLHF_INFERENCE_URL``, so its job starts ``transformers
serve``) and the test judge at a URL each judge all of them, swap on (2 requests per pair).
Pairs/s are the job's own (its ``seconds`` start once the engine answers with the model
loaded); the start-up is the rest of the job's wall time, shown apart. The tiny model cannot
follow the judge template: most of its verdicts are unparseable, and counted as such.

    .venv/bin/python bench/judge.py [--seeds 5] [--rounds 8] [--batch 16] [--open 48] [--noise 0.1]
        [--steps 40] [--pairs 40] [--part 1|2] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

# The repository root: this tree's `rlhf`, the active-learning bench's helpers and the test judge.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.active_learning import (  # noqa: E402
    WORD,
    new_world,
    open_pairs,
    quiet_tiny_world,
    votes_to_reach,
)
from tests.judge_server import JudgeServer  # noqa: E402

MIN_OVERLAP = 10  # pairs voted by both people and the judge before its votes train (the product's default: 20)
ARMS = ("people", "+judge")
LABELS = {"people": "human", "+judge": "human,judge"}


def run_judge_job(settings, judge_id: int) -> tuple[dict, float]:
    """Create and execute a judge job over every pair the judge has not judged; (its result, wall seconds)."""
    from rlhf import db
    from rlhf.jobs.judging import execute_judge_job
    from rlhf.models import JobStatus
    from rlhf.services.judges import create_judge_job, get_judge_job

    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as s:
        job_id = create_judge_job(session=s, judge=judge_id, source="all").id
    assert job_id is not None
    start = time.perf_counter()
    status = execute_judge_job(job_id, settings)
    wall = time.perf_counter() - start
    with db.session_scope(engine) as s:
        job = get_judge_job(session=s, job_id=job_id)
        if status is not JobStatus.succeeded:
            raise SystemExit(f"judge job failed: {job.error}")
        return dict(job.result or {}), wall


def register(settings, **fields) -> int:
    from rlhf import db
    from rlhf.services.judges import register_judge

    with db.session_scope(db.get_engine(settings.database_url)) as s:
        judge_id = register_judge(session=s, settings=settings, **fields).id
    assert judge_id is not None
    return judge_id


def rows_of(settings, labels: str) -> list[dict]:
    from rlhf import db
    from rlhf.services.dataset import preference_rows

    with db.session_scope(db.get_engine(settings.database_url)) as s:
        return preference_rows(session=s, labels=labels)


def train_on(settings, tiny: Path, name: str, rows: list[dict], steps: int, seed: int, heldout: list[dict]) -> float:
    """Train a reward model on these rows and measure it on the held-out pairs (no row: chance, 0.5)."""
    import torch

    from rlhf.training.params import RewardParams, build_params
    from rlhf.training.reward import train_reward
    from rlhf.training.scoring import load_reward_model, pairwise_accuracy

    if not rows:
        return 0.5
    params, _ = build_params("reward", {"steps": steps, "eval_fraction": 0.0, "seed": seed})
    assert isinstance(params, RewardParams)
    out = settings.data_dir / "checkpoints" / name
    # The scoring head is drawn from torch's global generator, which the trainer's seed does not
    # reach: seeded here, both arms start from the same head and differ only in their rows.
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints every logged step
        train_reward(
            base=str(tiny), rows=rows, output_dir=out, params=params, work_dir=settings.data_dir / "work" / name
        )
    model, tok = load_reward_model(str(out))
    accuracy = pairwise_accuracy(model, tok, heldout)
    assert accuracy is not None  # the held-out pairs are never empty
    shutil.rmtree(out, ignore_errors=True)
    return accuracy


def people_votes(settings) -> int:
    from sqlmodel import func, select

    from rlhf import db
    from rlhf.models import Vote
    from rlhf.services.vote_kinds import human_vote

    with db.session_scope(db.get_engine(settings.database_url)) as s:
        return int(s.exec(select(func.count()).select_from(Vote).where(human_vote())).one())


def judge_audit(settings, judge_id: int) -> dict:
    from rlhf import db
    from rlhf.services.judge_audit import audit
    from rlhf.services.judges import get_judge

    with db.session_scope(db.get_engine(settings.database_url)) as s:
        return audit(session=s, judge=get_judge(session=s, judge=judge_id), min_overlap=MIN_OVERLAP)


def run_seed(work: Path, tiny: Path, heldout: list[dict], args, seed: int) -> tuple[dict[str, list[dict]], dict]:
    """One seed's world, round by round: (each arm's curve, the judge's last audit)."""
    from rlhf import db
    from rlhf.services.simulate import simulate

    settings = new_world(work / f"s{seed}", tiny)
    curves: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    people_rows: list[dict] = []
    with JudgeServer(noise=0.1, position_bias=0.2, seed=seed) as server:
        judge_id = register(settings, name="test-judge", url=server.url, model="judge", swap=True)
        for r in range(1, args.rounds + 1):
            started, round_seed = time.perf_counter(), seed * 1000 + r
            open_pairs(settings, "random", args.open, None, round_seed, args.max_new_tokens)
            with db.session_scope(db.get_engine(settings.database_url)) as s:
                simulate(session=s, rule=f"contains:{WORD}", noise=args.noise, seed=round_seed, limit=args.batch)
            judged, _ = run_judge_job(settings, judge_id)
            votes = people_votes(settings)
            report = judge_audit(settings, judge_id)
            points: dict[str, dict] = {}
            for arm in ARMS:
                rows = rows_of(settings, LABELS[arm])
                if arm == "+judge" and rows == people_rows:
                    # The judge's votes do not train yet: the same rows and seed make the same model.
                    accuracy = points["people"]["accuracy"]
                else:
                    accuracy = train_on(settings, tiny, f"rm-{arm}-{r}", rows, args.steps, seed, heldout)
                people_rows = rows if arm == "people" else people_rows
                judge_rows = sum(row.get("label_source") == "judge" for row in rows)
                points[arm] = {
                    "votes": votes,
                    "rows": len(rows),
                    "judge_rows": judge_rows,
                    "accuracy": accuracy,
                    "label_p": report["label_p"],
                    "trains": report.get("trains", report["label_p"] is not None),
                }
                curves[arm].append(points[arm])
            print(
                f"  seed {seed} round {r}: {votes:4d} people's votes; judge: {judged['pairs_judged']} pairs, "
                f"{judged['voted']} voted, {judged['inconsistent']} inconsistent; label_p {report['label_p']}, "
                f"evidence {report.get('evidence', '-')}, trains {points['+judge']['trains']}; "
                + "; ".join(
                    f"{arm} {p['rows']} rows ({p['judge_rows']} judge's) accuracy {p['accuracy']:.3f}"
                    for arm, p in points.items()
                )
                + f" ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return curves, report


def part1(args) -> None:
    start = time.perf_counter()
    work, tiny, heldout = quiet_tiny_world("rlhf-judge-")
    print(
        f"Part 1: {args.seeds} seed(s), {args.rounds} rounds of {args.open} pairs opened and {args.batch} "
        f"people's votes (contains:{WORD}, noise {args.noise}), {args.steps} reward-model steps; held-out: "
        f"{len(heldout)} pairs; judge: contains:{WORD} with noise 0.1 and position_bias 0.2, swap on; "
        f"judge_min_overlap={MIN_OVERLAP} for the bench's worlds (RLHF_JUDGE_MIN_OVERLAP; the default is 20)",
        flush=True,
    )
    curves: dict[str, list[list[dict]]] = {arm: [] for arm in ARMS}
    audits = []
    for seed in range(args.seeds):
        got, report = run_seed(work, tiny, heldout, args, seed)
        for arm in ARMS:
            curves[arm].append(got[arm])
        audits.append(report)
    report1(curves, audits, args)
    shutil.rmtree(work, ignore_errors=True)
    print(f"Part 1: {time.perf_counter() - start:.0f} s wall time in all", flush=True)


def mean(values) -> float:
    return statistics.fmean(values)


def mean_or_none(values) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def report1(curves: dict[str, list[list[dict]]], audits: list[dict], args) -> None:
    print(f"\nheld-out accuracy by round (mean of {args.seeds} seed(s); votes are people's only)")
    print(
        f"{'round':>5} {'votes':>6} | {'people':>8} | {'+judge':>8} {'judge rows':>10} {'label_p':>7} {'trains in':>9}"
    )
    for r in range(args.rounds):
        people = [c[r] for c in curves["people"]]
        judged = [c[r] for c in curves["+judge"]]
        label_p = mean_or_none(p["label_p"] for p in judged)
        print(
            f"{r + 1:5d} {mean(p['votes'] for p in people):6.1f} | {mean(p['accuracy'] for p in people):8.3f} | "
            f"{mean(p['accuracy'] for p in judged):8.3f} {mean(p['judge_rows'] for p in judged):10.1f} "
            f"{'-' if label_p is None else f'{label_p:.3f}':>7} "
            f"{sum(p['trains'] for p in judged):3d} seeds"
        )
    # Single seeds wander by several points between rounds: the target is read off the mean curve.
    needed = {}
    for arm in ARMS:
        mean_curve = [
            {"votes": mean(c[r]["votes"] for c in curves[arm]), "accuracy": mean(c[r]["accuracy"] for c in curves[arm])}
            for r in range(args.rounds)
        ]
        needed[arm] = votes_to_reach(mean_curve, args.target_accuracy)
        per_seed = [votes_to_reach(c, args.target_accuracy) for c in curves[arm]]
        shown = ", ".join(str(v) if v is not None else "not reached" for v in per_seed)
        print(
            f"{arm:7}: people's votes to reach {args.target_accuracy:.2f}: "
            f"{f'{needed[arm]:.0f}' if needed[arm] is not None else 'not reached'} on the mean curve "
            f"(per seed: {shown}); final accuracy {mean_curve[-1]['accuracy']:.3f}"
        )
    if needed["people"] and needed["+judge"]:
        print(f"people's votes needed, +judge / people = {needed['+judge'] / needed['people']:.2f}")
    else:
        print("people's votes needed, +judge / people: not defined (an arm did not reach the target)")
    fields = (
        "label_p",
        "agreement",
        "agreement_without_ties",
        "kappa",
        "position_consistency",
        "overlap",
        "agreement_without_ties_pairs",
    )
    summary = {f: mean_or_none(a[f] for a in audits) for f in fields}
    print(
        "judge's audit after the last round (mean over seeds): "
        + ", ".join(f"{f} {'-' if v is None else f'{v:.3f}'}" for f, v in summary.items())
        + f"; from {sorted({str(a['label_p_from']) for a in audits})}"
    )
    print(
        json.dumps(
            {
                arm: [[{k: p[k] for k in ("votes", "accuracy", "judge_rows")} for p in c] for c in cs]
                for arm, cs in curves.items()
            }
        )
    )


def part2(args) -> None:
    from sqlmodel import select

    from rlhf import db
    from rlhf.models import Checkpoint

    work, tiny, _ = quiet_tiny_world("rlhf-judge-speed-")
    settings = new_world(work / "speed", tiny).model_copy(update={"inference_url": ""})
    open_pairs(settings, "random", args.pairs, None, 1, args.max_new_tokens)
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        ckpt = s.exec(select(Checkpoint).where(Checkpoint.name == "tiny")).one()
    concurrency = 4  # the same for both judges (the product's default)
    print(
        f"\nPart 2: judge jobs over the same pairs, swap on (2 requests per pair), concurrency {concurrency}",
        flush=True,
    )
    results = {}
    with JudgeServer(noise=0.1, position_bias=0.2, seed=0) as server:
        for kind in ("engine", "test judge"):
            if kind == "engine":
                judge_id = register(settings, name="tiny-judge", checkpoint_id=ckpt.id, concurrency=concurrency)
            else:
                judge_id = register(settings, name="test-judge", url=server.url, model="judge", concurrency=concurrency)
            result, wall = run_judge_job(settings, judge_id)
            results[kind] = {**result, "wall": wall}
    print(
        f"{'judge':42} {'pairs':>5} {'requests':>8} {'ask s':>7} {'pairs/s':>8} {'requests/s':>10} "
        f"{'voted':>5} {'inconsistent':>12} {'unparseable':>11} {'start-up s':>10}"
    )
    for kind, label in (
        ("engine", "tiny checkpoint on transformers serve"),
        ("test judge", "test judge at a URL (tests/judge_server.py)"),
    ):
        r = results[kind]
        pairs, seconds = r["pairs_judged"], r["seconds"]
        print(
            f"{label:42} {pairs:5d} {2 * pairs:8d} {seconds:7.2f} {pairs / seconds:8.2f} {2 * pairs / seconds:10.2f} "
            f"{r['voted']:5d} {r['inconsistent']:12d} {r['unparseable']:11d} {r['wall'] - seconds:10.2f}"
        )
    engine_rate = results["engine"]["pairs_judged"] / results["engine"]["seconds"]
    peer_rate = results["test judge"]["pairs_judged"] / results["test judge"]["seconds"]
    print(f"pairs/s, engine / test judge = {engine_rate / peer_rate:.3f}")
    print(
        "start-up: the job's wall time less its asking time (starting transformers serve and loading the "
        "checkpoint for the engine; reading the pairs and recording for both)"
    )
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="repeats with different samples, noise, judge flaws")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16, help="people's votes per round")
    ap.add_argument("--open", type=int, default=48, help="pairs (prompts) opened per round")
    ap.add_argument("--noise", type=float, default=0.1, help="probability a simulated person flips a decided vote")
    ap.add_argument("--steps", type=int, default=40, help="reward-model optimizer steps per round and arm")
    ap.add_argument("--target-accuracy", type=float, default=0.9)
    ap.add_argument("--pairs", type=int, default=40, help="Part 2: pairs each judge job judges")
    ap.add_argument("--part", type=int, choices=(1, 2), help="run only this part")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 3 rounds of 8 votes, 8 pairs")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds, args.batch, args.open, args.steps, args.pairs = 1, 3, 8, 24, 20, 8
    # preference_rows reads the judges' minimum overlap from the environment's settings.
    os.environ["RLHF_JUDGE_MIN_OVERLAP"] = str(MIN_OVERLAP)
    os.environ.pop("RLHF_INFERENCE_URL", None)  # Part 2's checkpoint judge runs on the embedded engine
    from rlhf.settings import reset_settings_cache

    reset_settings_cache()
    start = time.perf_counter()
    if args.part in (None, 1):
        part1(args)
    if args.part in (None, 2):
        part2(args)
    print(f"\n{time.perf_counter() - start:.0f} s wall time in all")


if __name__ == "__main__":
    main()

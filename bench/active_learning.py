"""Active learning: votes needed to reach a held-out reward-model accuracy, random vs uncertain pairs.

On the tiny model, simulated raters prefer answers containing "please" (``rlhf.services.simulate``,
with ``--noise`` flipping a decided vote). Both strategies start from the same seed round
of random votes (one database, copied); then each round opens ``--batch`` comparisons
through the product's generation job (``random``, or ``uncertain`` ranked by the reward
model trained on the votes so far), the simulated raters vote, and a reward model is
trained on all votes so far (``rlhf.training.reward.train_reward``, from the base model,
``--steps`` steps). Accuracy is measured on a fixed held-out set: the tiny model's own
answers to the held-out prompts, paired so that exactly one contains the word, labelled
by the rule without noise. Every vote counts, ties included: a tie is a rater's time
spent on a pair that teaches the reward model nothing.

    .venv/bin/python bench/active_learning.py [--rounds 8] [--batch 16] [--seeds 5] [--noise 0.1]
        [--target-accuracy 0.9]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

WORD = "please"


def quiet_tiny_world(prefix: str) -> tuple[Path, Path, list[dict]]:
    """(a new work folder, the tiny model built in it, the held-out pairs), with the libraries'
    progress bars and step logs kept off the bench's output."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    from rlhf.modeling.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix=prefix))
    with contextlib.redirect_stdout(io.StringIO()):  # its SFT warm-up prints every logged step
        tiny = build_tiny_model(work / "tiny")
    return work, tiny, heldout_rows(tiny, per_prompt=8, seed=1234)


def heldout_rows(tiny: Path, per_prompt: int, seed: int) -> list[dict]:
    """Pairs of the tiny model's answers to held-out prompts where exactly one contains the word.

    Answers with the word run longer (it comes in a closing sentence), so each is paired with
    the answer without it closest in length: a reward model that only learned "longer is
    better" scores near chance here, one that learned the word does not.
    """
    from rlhf.modeling.sample_stats import heldout_prompts
    from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
    from rlhf.models import Choice
    from rlhf.services.simulate import parse_rule

    decide = parse_rule(f"contains:{WORD}")
    prompts = heldout_prompts(32)
    samples = sample_checkpoint(str(tiny), prompts, n=32, params=SamplingParams(seed=seed, max_new_tokens=48))
    rows = []
    for prompt, answers in zip(prompts, samples):
        texts = list(dict.fromkeys(s.text for s in answers))
        yes = [t for t in texts if decide(t, "") is Choice.a][:per_prompt]
        no = [t for t in texts if decide(t, "") is Choice.tie]
        for a in yes:
            if not no:
                break
            b = min(no, key=lambda t: abs(len(t) - len(a)))
            no.remove(b)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": a}],
                    "rejected": [{"role": "assistant", "content": b}],
                }
            )
    return rows


def new_world(folder: Path, tiny: Path):
    """A fresh database with the tiny model serving and the bundled prompts imported."""
    from rlhf import db
    from rlhf.modeling.tiny import PROMPTS_PATH
    from rlhf.services.checkpoints import register_checkpoint
    from rlhf.services.prompts import import_file

    settings = world_settings(folder)
    db.migrate(settings.database_url)
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        register_checkpoint(session=s, path=str(tiny), name="tiny", serve=True)
        import_file(session=s, path=PROMPTS_PATH)
    return settings


def world_settings(folder: Path):
    from rlhf.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    return Settings(data_dir=folder, database_url=f"sqlite:///{folder / 'rlhf.db'}", broker_url="")


def open_and_vote(
    settings, strategy: str, batch: int, reward_id: int | None, noise: float, seed: int, max_new_tokens: int
) -> dict:
    """One round of collection: a generation job opens ``batch`` prompts' pairs; simulated raters vote.

    ``seed`` seeds both the sampling and the raters' noise: the two strategies draw alike in
    the same round of the same repeat, and repeats differ in both."""
    from rlhf import db
    from rlhf.services.generation_jobs import get_generation_job
    from rlhf.services.simulate import simulate

    job_id = open_pairs(settings, strategy, batch, reward_id, seed, max_new_tokens)
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        simulate(session=s, rule=f"contains:{WORD}", noise=noise, seed=seed)
        return get_generation_job(session=s, job_id=job_id).result


def open_pairs(
    settings,
    strategy: str,
    batch: int,
    reward_id: int | None,
    seed: int,
    max_new_tokens: int,
    rank: int | None = None,
) -> int:
    """A generation job opens ``batch`` prompts' pairs (one vote each), or with ``rank`` one ranking
    of that many answers per prompt; returns the job's id."""
    from rlhf import db
    from rlhf.jobs.generation import execute_generation_job
    from rlhf.models import JobStatus
    from rlhf.services.generation_jobs import create_generation_job, get_generation_job

    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as s:
        job_id = create_generation_job(
            session=s,
            strategy=strategy,
            limit=batch,
            target_votes=1,
            seed=seed,
            reward_checkpoint_id=reward_id if strategy == "uncertain" else None,
            sampling={"max_new_tokens": max_new_tokens},
            rank=rank,
        ).id
    if execute_generation_job(job_id, settings) is not JobStatus.succeeded:
        with db.session_scope(engine) as s:
            raise SystemExit(f"generation job failed: {get_generation_job(session=s, job_id=job_id).error}")
    return job_id


def train_round(
    settings, tiny: Path, name: str, steps: int, seed: int, heldout: list[dict], extra: dict | None = None
) -> dict:
    """Train a reward model on every vote so far, register it, measure it on the held-out pairs.

    ``extra``: more reward-model parameters (as ``--set`` takes them) over the bench's own."""
    from sqlmodel import func, select

    from rlhf import db
    from rlhf.models import Vote
    from rlhf.services.checkpoints import register_checkpoint
    from rlhf.services.dataset import preference_rows
    from rlhf.training.params import build_params
    from rlhf.training.reward import train_reward
    from rlhf.training.scoring import load_reward_model, pairwise_accuracy

    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as s:
        rows = preference_rows(session=s)
        votes = s.exec(select(func.count()).select_from(Vote)).one()
    if not rows:
        raise SystemExit("no decided votes to train on: raise --seed-votes")
    params, _ = build_params("reward", {"steps": steps, "eval_fraction": 0.0, "seed": seed, **(extra or {})})
    out = settings.data_dir / "checkpoints" / name
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints every logged step
        train_reward(
            base=str(tiny), rows=rows, output_dir=out, params=params, work_dir=settings.data_dir / "work" / name
        )
    with db.session_scope(engine) as s:
        reward_id = register_checkpoint(session=s, path=str(out), name=name).id
    model, tok = load_reward_model(str(out))
    return {
        "votes": votes,
        "decided": len(rows),
        "accuracy": pairwise_accuracy(model, tok, heldout),
        "reward_id": reward_id,
    }


def votes_to_reach(curve: list[dict], target: float) -> int | None:
    return next((p["votes"] for p in curve if p["accuracy"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8, help="rounds after the seed round")
    ap.add_argument("--batch", type=int, default=16, help="prompts (one pair each) opened per round")
    ap.add_argument("--seed-votes", type=int, default=16, help="random pairs voted on before the strategies split")
    ap.add_argument(
        "--seeds", type=int, default=5, help="repeats with different samples, rater noise and training seeds"
    )
    ap.add_argument("--noise", type=float, default=0.1, help="probability a simulated rater flips a decided vote")
    ap.add_argument("--steps", type=int, default=40, help="reward-model optimizer steps per round")
    ap.add_argument(
        "--target-accuracy",
        type=float,
        default=0.9,
        help="held-out accuracy to reach (the tiny setup reaches ~0.9 within the default rounds)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    start = time.perf_counter()
    work, tiny, heldout = quiet_tiny_world("rlhf-active-")
    longer = sum(len(r["chosen"][0]["content"]) > len(r["rejected"][0]["content"]) for r in heldout) / len(heldout)
    print(
        f"held-out: {len(heldout)} pairs with exactly one '{WORD}' answer, labelled without noise; "
        f"the chosen one is the longer in {longer:.0%}"
    )
    curves: dict[str, list[list[dict]]] = {"random": [], "uncertain": []}
    for seed in range(args.seeds):
        base = new_world(work / f"s{seed}" / "seed-round", tiny)
        open_and_vote(base, "random", args.seed_votes, None, args.noise, seed * 1000 + 1, args.max_new_tokens)
        first = train_round(base, tiny, "rm-0", args.steps, seed, heldout)
        print(
            f"seed {seed}: seed round {first['votes']} votes ({first['decided']} decided), "
            f"accuracy {first['accuracy']:.3f}"
        )
        for strategy, runs in curves.items():
            settings = world_settings(work / f"s{seed}" / strategy)
            _copy_database(base.data_dir / "rlhf.db", settings.data_dir / "rlhf.db")
            shutil.copytree(base.data_dir / "checkpoints", settings.data_dir / "checkpoints")
            _repoint(settings, base.data_dir, settings.data_dir)
            curve, reward_id = [first], first["reward_id"]
            for r in range(1, args.rounds + 1):
                got = open_and_vote(
                    settings, strategy, args.batch, reward_id, args.noise, seed * 1000 + 1 + r, args.max_new_tokens
                )
                point = train_round(settings, tiny, f"rm-{r}", args.steps, seed, heldout)
                curve.append(point)
                reward_id = point["reward_id"]
                print(
                    f"  {strategy:9} round {r}: {point['votes']:4d} votes ({point['decided']:3d} decided) "
                    f"accuracy {point['accuracy']:.3f}"
                    + (
                        f"  opened margin median {got['margin_median']:.3f} of candidates' "
                        f"{got['candidate_margin_median']:.3f}"
                        if "margin_median" in got
                        else ""
                    )
                )
            runs.append(curve)
    report(curves, args)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


def _copy_database(src: Path, dst: Path) -> None:
    """SQLite's backup API: the copy includes what still sits in the write-ahead log."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(src)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def _repoint(settings, old: Path, new: Path) -> None:
    """The copied database names the seed round's reward model by path; point it at the copy."""
    from sqlmodel import select

    from rlhf import db
    from rlhf.models import Checkpoint

    with db.session_scope(db.get_engine(settings.database_url)) as s:
        for ckpt in s.exec(select(Checkpoint)).all():
            if ckpt.path.startswith(str(old)):
                ckpt.path = str(new) + ckpt.path[len(str(old)) :]
                s.add(ckpt)


def report(curves: dict[str, list[list[dict]]], args) -> None:
    def mean(values):
        return statistics.fmean(values)

    print(
        f"\nvotes vs held-out accuracy (contains:{WORD}, noise {args.noise}, batch {args.batch}, "
        f"{args.steps} steps per reward model, mean of {args.seeds} seed(s))"
    )
    print(
        f"{'round':>5} | {'random votes':>12} {'decided':>7} {'accuracy':>8} | "
        f"{'uncertain votes':>15} {'decided':>7} {'accuracy':>8}"
    )
    for r in range(args.rounds + 1):
        cells = []
        for strategy in ("random", "uncertain"):
            points = [c[r] for c in curves[strategy]]
            width = 12 if strategy == "random" else 15
            cells.append(
                f"{mean([p['votes'] for p in points]):{width}.1f} {mean([p['decided'] for p in points]):7.1f} "
                f"{mean([p['accuracy'] for p in points]):8.3f}"
            )
        print(f"{r:5d} | " + " | ".join(cells))
    # Single runs wander by several points from one round to the next (a few dozen decided
    # votes, 10 % of them flipped), so the target is read off the mean curve over the seeds.
    needed = {}
    for strategy in ("random", "uncertain"):
        per_seed = [votes_to_reach(c, args.target_accuracy) for c in curves[strategy]]
        mean_curve = [
            {
                "votes": mean([c[r]["votes"] for c in curves[strategy]]),
                "accuracy": mean([c[r]["accuracy"] for c in curves[strategy]]),
            }
            for r in range(args.rounds + 1)
        ]
        needed[strategy] = votes_to_reach(mean_curve, args.target_accuracy)
        shown = ", ".join(str(v) if v is not None else "not reached" for v in per_seed)
        print(
            f"{strategy:9}: votes to reach accuracy {args.target_accuracy:.2f}: "
            f"{f'{needed[strategy]:.0f}' if needed[strategy] is not None else 'not reached'} on the mean curve "
            f"(per seed: {shown}); final accuracy {mean_curve[-1]['accuracy']:.3f}"
        )
    if needed["random"] and needed["uncertain"]:
        print(f"votes needed, uncertain / random = {needed['uncertain'] / needed['random']:.2f}")
    else:
        print("votes needed, uncertain / random: not defined (a strategy did not reach the target)")
    print(
        json.dumps(
            {
                s: [[{k: p[k] for k in ("votes", "decided", "accuracy")} for p in c] for c in cs]
                for s, cs in curves.items()
            }
        )
    )


if __name__ == "__main__":
    main()

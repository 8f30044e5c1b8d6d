"""Rater time: do "how much better", or rankings of 4 answers, pay per minute of a rater's time?

On the tiny model, simulated raters prefer answers containing "please" (``rlhf.services.simulate``,
``--noise`` flipping each decided comparison), as in ``bench/active_learning.py``. Each seed
opens, through the product's generation job, one pool of random pairs of the tiny model's answers
(one vote each) and, in a database of its own, one ranking of 4 of its answers on each of the
same prompts (``rank=4``, one order each). Three arms judge their pool in the same order until
the same budget of rater-minutes (``--minutes``) is spent (``simulate(minutes=...)``):

- ``pairs``: plain A/B votes, reward model trained as usual;
- ``pairs+strength``: the same raters also say how much better (``simulate(strength=True)``),
  reward model trained with ``use_strength=true`` (TRL's margin per level);
- ``rankings of 4``: the raters order each ranking's 4 answers (noise flips each pair the rule
  tells apart, the order rebuilt by its Copeland count: see ``rlhf.services.simulate``), reward
  model trained on the ranking's pairs with the trainer's default weighting of a ranking.

Same rule, noise and training seed in every arm: the arms differ in what a judgement says and
in how many judgements the budget buys. Each reward model (``rlhf.training.reward.train_reward``,
from the base model, ``--steps`` steps) is measured on active_learning's held-out pairs,
labelled by the rule without noise.

The rater-time model is ``rlhf.services.simulate.judgement_seconds``, shared with ``rlhf
simulate``: a decision (``DECIDE_S``, 3 s, assumed), the prompt and every answer read at
``READING_CHARS_PER_MIN`` (1000 characters a minute, ~200 words, assumed), the Rate tab's own
time to the next item (``RATE_UI_NEXT_S``, see its docstring), 1.5 s more for a "slightly" or
"clearly" strength (a button after the vote; "much" rides on the vote's key; assumed), and 2 s
for each answer of a ranking beyond two (``ORDER_PER_EXTRA_ANSWER_S``, assumed). Every judgement
counts against the budget, ties included (most random pairs are ties for this rule: both or
neither answer has the word; a ranking is a tie only when all 4 or none have it).

    .venv/bin/python bench/rater_time.py [--minutes 10] [--seeds 5] [--noise 0.1] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlhf.settings import Settings

# The repository root: this tree's `rlhf`, and the active-learning bench's helpers as `bench.…`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.active_learning import (  # noqa: E402
    WORD,
    _copy_database,
    new_world,
    open_pairs,
    quiet_tiny_world,
    train_round,
    world_settings,
)

RANK = 4
ARMS = ("pairs", "pairs+strength", f"rankings of {RANK}")


def open_pool(folder: Path, tiny: Path, args, seed: int, rank: int | None) -> tuple[Settings, int]:
    """A world with one pair (or ranking of ``rank``) opened per prompt of the pool; (its settings,
    how many it opened)."""
    from rlhf import db
    from rlhf.services.generation_jobs import get_generation_job

    settings = new_world(folder, tiny)
    job_id = open_pairs(settings, "random", args.pool, None, seed * 1000 + 1, args.max_new_tokens, rank=rank)
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        result = get_generation_job(session=s, job_id=job_id).result
    return settings, result["rankings"] if rank else result["comparisons"]


def run_arm(settings, tiny: Path, arm: str, args, seed: int, heldout: list[dict]) -> dict:
    from rlhf import db
    from rlhf.services.simulate import simulate

    strength = arm == "pairs+strength"
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        got = simulate(
            session=s,
            rule=f"contains:{WORD}",
            noise=args.noise,
            seed=seed * 1000 + 1,
            strength=strength,
            minutes=args.minutes,
        )
    ranked = arm.startswith("rankings")
    judgements = got.judgements
    pairs = got.get("ranking_pairs", 0) if ranked else got["votes"]
    decided = got.get("ranking_decided", 0) if ranked else got.get("a", 0) + got.get("b", 0)
    if not decided:
        raise SystemExit(f"{arm}: no decided pairs within {args.minutes} minutes: raise --minutes")
    point = train_round(
        settings, tiny, "rm", args.steps, seed, heldout, extra={"use_strength": True} if strength else None
    )
    return {
        "judgements": judgements,
        "pairs": pairs,
        "decided": decided,
        "minutes": got.rater_minutes,
        "levels": [got.get(f"strength_{i}", 0) for i in (1, 2, 3)],
        "accuracy": point["accuracy"],
    }


def main() -> None:
    from rlhf.services import simulate as model
    from rlhf.training.params import build_params

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="rater-minutes each arm may spend, per seed")
    ap.add_argument("--seeds", type=int, default=5, help="repeats with different pools, rater noise and training seeds")
    ap.add_argument("--noise", type=float, default=0.1, help="probability a simulated rater flips a decided comparison")
    ap.add_argument("--steps", type=int, default=40, help="reward-model optimizer steps")
    ap.add_argument("--pool", type=int, default=120, help="prompts given a pair or a ranking per seed (120 bundled)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    if args.minutes <= 0:
        raise SystemExit(f"--minutes must be above 0, not {args.minutes}")

    start = time.perf_counter()
    work, tiny, heldout = quiet_tiny_world("rlhf-rater-time-")
    print(f"held-out: {len(heldout)} pairs with exactly one '{WORD}' answer, labelled without noise")
    print(
        f"rater time per judgement: decision {model.DECIDE_S:.1f} s (assumed) + the Rate tab's own time "
        f"{1000 * model.RATE_UI_NEXT_S:.1f} ms + reading the prompt and every answer at "
        f"{model.READING_CHARS_PER_MIN:.0f} characters/min (assumed); 'slightly' or 'clearly' "
        f"+{model.STRENGTH_CLICK_S:.1f} s (assumed), 'much' rides on the key; a ranking "
        f"+{model.ORDER_PER_EXTRA_ANSWER_S:.1f} s per answer beyond two (assumed)"
    )
    weighting = getattr(build_params("reward", {})[0], "ranking_weight", None)
    print(
        f"a ranking's pairs in training: ranking_weight={weighting}"
        if weighting is not None
        else "a ranking's pairs in training: one row each (this trainer has no ranking_weight)"
    )
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in range(args.seeds):
        pairs_pool, n_pairs = open_pool(work / f"s{seed}" / "pairs-pool", tiny, args, seed, None)
        ranked_pool, n_ranked = open_pool(work / f"s{seed}" / "ranked-pool", tiny, args, seed, RANK)
        line = []
        for arm in ARMS:
            ranked = arm.startswith("rankings")
            pool, size = (ranked_pool, n_ranked) if ranked else (pairs_pool, n_pairs)
            folder = work / f"s{seed}" / arm.replace(" ", "-")
            folder.mkdir()
            _copy_database(pool.data_dir / "rlhf.db", folder / "rlhf.db")
            got = run_arm(world_settings(folder), tiny, arm, args, seed, heldout)
            if got["judgements"] >= size:
                print(f"  ({arm}: the pool of {size} ran out before the budget: raise --pool or lower --minutes)")
            results[arm].append(got)
            line.append(
                f"{arm} {got['judgements']} judgements, {got['pairs']} pairs ({got['decided']} decided) "
                f"{got['accuracy']:.3f}"
            )
        print(f"seed {seed}: {n_pairs} pairs, {n_ranked} rankings opened; " + "; ".join(line))
    report(results, args)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(way: str, diffs: list[float]) -> str:
    """Whether a way paid against plain pairs: the mean paired difference beyond the seeds' sd of it."""
    mean, sd = statistics.fmean(diffs), spread(diffs)
    if len(diffs) < 2:
        said = f"one seed cannot tell whether {way} paid: run more --seeds"
    elif mean > sd:
        said = f"{way} paid on this setup: {mean:+.3f} accuracy, beyond the seeds' spread (sd {sd:.3f})"
    elif mean < -sd:
        said = f"{way} cost accuracy on this setup: {mean:+.3f}, beyond the seeds' spread (sd {sd:.3f})"
    else:
        said = (
            f"{way} did not pay on this setup: the difference ({mean:+.3f}) is within the seeds' spread (sd {sd:.3f})"
        )
    return said[0].upper() + said[1:] + "."


def report(results: dict[str, list[dict]], args) -> None:
    print(
        f"\nheld-out reward-model accuracy at {args.minutes:g} rater-minutes per arm (contains:{WORD}, "
        f"noise {args.noise}, {args.steps} steps, {args.seeds} seed(s); mean over the seeds, accuracy mean ± sd)"
    )
    print(
        f"{'arm':15} {'judgements':>10} {'pairs':>6} {'decided':>7} {'minutes':>7} "
        f"{'slightly/clearly/much':>21} {'accuracy':>15} {'/ pairs':>7}"
    )
    base = statistics.fmean(r["accuracy"] for r in results["pairs"])
    for arm in ARMS:
        rs = results[arm]
        acc = [r["accuracy"] for r in rs]
        levels = (
            "/".join(f"{statistics.fmean(r['levels'][i] for r in rs):.1f}" for i in range(3))
            if arm == "pairs+strength"
            else "-"
        )
        print(
            f"{arm:15} {statistics.fmean(r['judgements'] for r in rs):10.1f} "
            f"{statistics.fmean(r['pairs'] for r in rs):6.1f} {statistics.fmean(r['decided'] for r in rs):7.1f} "
            f"{statistics.fmean(r['minutes'] for r in rs):7.2f} {levels:>21} "
            f"{statistics.fmean(acc):7.3f} ± {spread(acc):.3f} {statistics.fmean(acc) / base:7.3f}"
        )
    for arm, way in (("pairs+strength", "strength"), (f"rankings of {RANK}", f"rankings of {RANK}")):
        diffs = [o["accuracy"] - p["accuracy"] for o, p in zip(results[arm], results["pairs"])]
        print(
            f"{arm} − pairs, per seed: "
            + ", ".join(f"{d:+.3f}" for d in diffs)
            + f"; mean {statistics.fmean(diffs):+.3f}, sd {spread(diffs):.3f}"
        )
        print(verdict(way, diffs))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Rater time: does asking "how much better" pay, per minute of a rater's time?

On the tiny model, simulated raters prefer answers containing "please" (``rlhf.services.simulate``,
``--noise`` flipping a decided vote), as in ``bench/active_learning.py``. Each seed opens one
pool of random pairs of the tiny model's answers (one generation job, one vote each), and two
arms judge it in the same order under the same budget of rater-minutes (``--minutes``):

- ``pairs``: plain A/B votes (``simulate(strength=False)``), reward model trained as usual;
- ``pairs+strength``: the same raters also say how much better (``simulate(strength=True)``),
  reward model trained with ``use_strength=true`` (TRL's margin per level).

Same rule, same noise draws, same training seed: the arms differ only in the strength and in
how many judgements the budget buys. Each reward model (``rlhf.training.reward.train_reward``,
from the base model, ``--steps`` steps) is measured on active_learning's held-out pairs,
labelled by the rule without noise. A third way, rankings of 4 answers, is not measured:
rankings are not built.

The rater-time model: one judgement costs a fixed time plus reading time.

- Reading: the characters of the prompt and both answers at ``READING_CHARS_PER_MIN``, 1000
  characters a minute. An assumption: about 200 words a minute at about 5 characters a word,
  a careful reading pace rather than skimming.
- Fixed: the app's own time from a vote to the next pair on screen, measured here (the median
  over one pass of ``rlhf.services.rating.vote_then_next`` through the seed's pool, on a copy
  of its database), plus a human decision time, ``DECIDE_S`` = 3 s (an assumption).
- Strength: free when it rides on the vote's key (Shift+1/2 vote "much better"); "slightly"
  and "clearly" are a button after the vote, ``STRENGTH_CLICK_S`` = 1.5 s more (an
  assumption). Ties say no strength and cost nothing more.

Every judgement counts against the budget, ties included (most random pairs are ties for
this rule: both or neither answer has the word).

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

# Assumptions, not measurements (see the module's docstring): only the app's own time is measured.
READING_CHARS_PER_MIN = 1000.0  # ~200 words a minute at ~5 characters a word
DECIDE_S = 3.0  # a person weighing two read answers and pressing a key
STRENGTH_CLICK_S = 1.5  # the "slightly" / "clearly" button after the vote
ARMS = ("pairs", "pairs+strength")


def time_the_app(settings) -> tuple[list[dict], list[float]]:
    """One rater votes through the whole pool with ``vote_then_next``; each pair's reading size and
    what the rule says of it (by comparison id), and the seconds each call took."""
    from rlhf import db
    from rlhf.models import Choice, Strength, VoteKind
    from rlhf.services.comparisons import next_for_rater
    from rlhf.services.rating import vote_then_next
    from rlhf.services.simulate import parse_rule, parse_strength_rule, simulated_raters

    decide, how_much = parse_rule(f"contains:{WORD}"), parse_strength_rule(f"contains:{WORD}")
    pairs, seconds = [], []
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        (rater,) = simulated_raters(session=s, k=1)
        s.commit()
        shown = next_for_rater(session=s, rater=rater)
        while shown is not None:
            choice = decide(shown.a, shown.b)
            pairs.append(
                {
                    "id": shown.comparison_id,
                    "chars": sum(len(m.get("content") or "") for m in shown.prompt) + len(shown.a) + len(shown.b),
                    "click": choice is not Choice.tie and how_much(shown.a, shown.b) is not Strength.much,
                }
            )
            start = time.perf_counter()
            _, shown = vote_then_next(
                session=s,
                rater=rater,
                comparison_id=shown.comparison_id,
                choice=choice,
                kind=VoteKind.simulated,
                source="bench:rater_time",
            )
            seconds.append(time.perf_counter() - start)
    return sorted(pairs, key=lambda p: p["id"]), seconds


def affordable(costs: list[float], budget_s: float) -> int:
    """How many judgements, taken in order, fit in the budget."""
    spent, n = 0.0, 0
    for c in costs:
        if spent + c > budget_s:
            break
        spent, n = spent + c, n + 1
    return n


def run_arm(settings, tiny: Path, arm: str, judgements: int, args, seed: int, heldout: list[dict]) -> dict:
    from rlhf import db
    from rlhf.services.simulate import simulate

    if judgements < 1:  # simulate's limit of 0 would mean no limit
        raise SystemExit(f"{arm}: not one judgement fits in {args.minutes} minutes: raise --minutes")
    strength = arm == "pairs+strength"
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        counts = simulate(
            session=s,
            rule=f"contains:{WORD}",
            noise=args.noise,
            limit=judgements,
            seed=seed * 1000 + 1,
            strength=strength,
        )
    decided = counts.get("a", 0) + counts.get("b", 0)
    if not decided:
        raise SystemExit(f"{arm}: no decided votes within {args.minutes} minutes: raise --minutes")
    point = train_round(
        settings, tiny, "rm", args.steps, seed, heldout, extra={"use_strength": True} if strength else None
    )
    return {
        "judgements": counts["votes"],
        "decided": decided,
        "levels": [counts.get(f"strength_{i}", 0) for i in (1, 2, 3)],
        "accuracy": point["accuracy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="rater-minutes each arm may spend, per seed")
    ap.add_argument("--seeds", type=int, default=5, help="repeats with different pairs, rater noise and training seeds")
    ap.add_argument("--noise", type=float, default=0.1, help="probability a simulated rater flips a decided vote")
    ap.add_argument("--steps", type=int, default=40, help="reward-model optimizer steps")
    ap.add_argument("--pool", type=int, default=120, help="prompts whose pair is opened per seed (120 are bundled)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    start = time.perf_counter()
    work, tiny, heldout = quiet_tiny_world("rlhf-rater-time-")
    print(f"held-out: {len(heldout)} pairs with exactly one '{WORD}' answer, labelled without noise")
    print(
        f"rater time per judgement: decision {DECIDE_S:.1f} s (assumed) + the app's vote-to-next-pair time "
        f"(measured) + reading at {READING_CHARS_PER_MIN:.0f} characters/min (assumed); "
        f"'slightly' or 'clearly' +{STRENGTH_CLICK_S:.1f} s (assumed), 'much' rides on the key"
    )
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    app_ms = []
    for seed in range(args.seeds):
        base = new_world(work / f"s{seed}" / "pool", tiny)
        open_pairs(base, "random", args.pool, None, seed * 1000 + 1, args.max_new_tokens)
        timing = work / f"s{seed}" / "timing"
        timing.mkdir()
        _copy_database(base.data_dir / "rlhf.db", timing / "rlhf.db")
        pairs, seconds = time_the_app(world_settings(timing))
        app_ms.append(1000 * statistics.median(seconds))
        fixed = DECIDE_S + statistics.median(seconds)
        plain = [fixed + 60 * p["chars"] / READING_CHARS_PER_MIN for p in pairs]
        costs = {"pairs": plain, "pairs+strength": [c + STRENGTH_CLICK_S * p["click"] for c, p in zip(plain, pairs)]}
        line = []
        for arm in ARMS:
            n = affordable(costs[arm], 60 * args.minutes)
            if n == len(pairs):
                print(f"  ({arm}: the pool of {n} pairs ran out before the budget: raise --pool or lower --minutes)")
            folder = work / f"s{seed}" / arm
            folder.mkdir()
            _copy_database(base.data_dir / "rlhf.db", folder / "rlhf.db")
            got = run_arm(world_settings(folder), tiny, arm, n, args, seed, heldout)
            got["minutes"] = sum(costs[arm][:n]) / 60
            results[arm].append(got)
            line.append(f"{arm} {got['judgements']} judgements ({got['decided']} decided) {got['accuracy']:.3f}")
        print(
            f"seed {seed}: {len(pairs)} pairs, mean {statistics.fmean(plain):.1f} s each as plain pairs "
            f"(app {app_ms[-1]:.1f} ms); " + "; ".join(line)
        )
    report(results, app_ms, args)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


def report(results: dict[str, list[dict]], app_ms: list[float], args) -> None:
    def spread(values: list[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else 0.0

    print(
        f"\nheld-out reward-model accuracy at {args.minutes:g} rater-minutes per arm (contains:{WORD}, "
        f"noise {args.noise}, {args.steps} steps, {args.seeds} seed(s); app's vote-to-next-pair median "
        f"{statistics.fmean(app_ms):.1f} ms over the seeds)"
    )
    print(
        f"{'arm':16} {'judgements':>10} {'decided':>7} {'minutes':>7} {'slightly/clearly/much':>21} "
        f"{'accuracy':>15} {'/ pairs':>7}"
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
            f"{arm:16} {statistics.fmean(r['judgements'] for r in rs):10.1f} "
            f"{statistics.fmean(r['decided'] for r in rs):7.1f} {statistics.fmean(r['minutes'] for r in rs):7.2f} "
            f"{levels:>21} {statistics.fmean(acc):7.3f} ± {spread(acc):.3f} {statistics.fmean(acc) / base:7.3f}"
        )
    print("rankings of 4: not measured yet (rankings are not built)")
    diffs = [s["accuracy"] - p["accuracy"] for s, p in zip(results["pairs+strength"], results["pairs"])]
    mean, sd = statistics.fmean(diffs), spread(diffs)
    print(
        "pairs+strength − pairs, per seed: "
        + ", ".join(f"{d:+.3f}" for d in diffs)
        + f"; mean {mean:+.3f}, sd {sd:.3f}"
    )
    # "Beyond the spread": the mean paired difference larger than the seeds' sd of that difference.
    if len(diffs) < 2:
        verdict = "one seed cannot tell whether strength paid: run more --seeds"
    elif mean > sd:
        verdict = f"strength paid on this setup: {mean:+.3f} accuracy, beyond the seeds' spread (sd {sd:.3f})"
    elif mean < -sd:
        verdict = f"strength cost accuracy on this setup: {mean:+.3f}, beyond the seeds' spread (sd {sd:.3f})"
    else:
        verdict = (
            f"strength did not pay on this setup: the difference ({mean:+.3f}) "
            f"is within the seeds' spread (sd {sd:.3f})"
        )
    print(verdict[0].upper() + verdict[1:] + ".")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Noisy votes: hard majority labels against per-pair soft labels (DPO), and machine labels (reward model).

On the tiny model, simulated raters (``rlhf.services.simulate``) prefer answers containing
"please", each flipping a decided vote with probability ``noise``.

1. *DPO, hard against soft.* The tiny model's own answers to the training prompts are paired
   (one with the word, one without, closest in length, in random order) and opened with
   three votes each; three simulated raters vote. DPO trains on the same rows twice, from
   the same base and seed: with every label taken as certain (``soft_labels=false``, the
   majority's answer, TRL's own trainer) and with each pair's ``label_p`` from its vote split
   (2 of 3 → 0.667). Learning the rule is measured on held-out prompts: the share of
   16 × 16 seeded samples that contain the word, before and after. Noise 0.1, 0.2, 0.3,
   ``--seeds`` seeds each, mean ± sd, and soft / hard as a ratio of the gain over the base.
2. *Reward model, people only against people + machine labels.* ``--human`` pairs get one
   vote each (noise 0.1) and more pairs stay open. A reward model trained on the people's
   votes (``rlhf train reward``, holding out ``--eval-fraction``) labels the open pairs it is
   sure of (a label job at ``--min-confidence``, calibrated on what it held out); a second
   reward model trains on the same people's votes plus those machine labels (``--labels
   both``). Both are measured on the same noise-free held-out pairs of the tiny model's
   answers, at the same number of people's votes.

    .venv/bin/python bench/noisy_labels.py [--quick] [--seeds 5] [--pairs 64] [--steps 40]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.active_learning import WORD, heldout_rows, world_settings  # noqa: E402


def own_pairs(tiny: Path, n_pairs: int, seed: int) -> list[tuple[list[dict], str, str]]:
    """(prompt, answer a, answer b): one with the word and one without, closest in length, random order."""
    from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
    from rlhf.modeling.tiny import PROMPTS_PATH
    from rlhf.models import Choice
    from rlhf.services.prompts import parse_file
    from rlhf.services.simulate import parse_rule

    decide = parse_rule(f"contains:{WORD}")
    prompts = [r.messages for r in parse_file(PROMPTS_PATH)]
    rng = random.Random(seed)
    samples = sample_checkpoint(str(tiny), prompts, n=8, params=SamplingParams(seed=seed, max_new_tokens=48))
    out = []
    for prompt, answers in zip(prompts, samples):
        texts = list(dict.fromkeys(s.text for s in answers))
        no = [t for t in texts if decide(t, "") is Choice.tie]
        for a in [t for t in texts if decide(t, "") is Choice.a]:
            if not no:
                break
            b = min(no, key=lambda t: abs(len(t) - len(a)))
            no.remove(b)
            out.append((prompt, *((a, b) if rng.random() < 0.5 else (b, a))))
    rng.shuffle(out)
    if len(out) < n_pairs:
        print(f"(only {len(out)} pairs with exactly one '{WORD}' answer; using them all)")
    return out[:n_pairs]


def voted_world(folder: Path, tiny: Path, pairs, votes: int, noise: float, seed: int, unvoted=()):
    """A database with ``pairs`` opened at ``votes`` votes each and voted on by that many simulated raters,
    and ``unvoted`` pairs left open; returns its settings."""
    from rlhf import db
    from rlhf.models import Response
    from rlhf.services.checkpoints import register_checkpoint
    from rlhf.services.comparisons import open_comparison
    from rlhf.services.prompts import PromptRecord, import_records
    from rlhf.services.simulate import simulate

    settings = world_settings(folder)
    db.migrate(settings.database_url)
    engine = db.get_engine(settings.database_url)

    def add(s, group, target):
        ids = import_records(session=s, records=[PromptRecord(messages=p) for p, _, _ in group]).ids
        for pid, (_, a, b) in zip(ids, group):
            ra, rb = Response(prompt_id=pid, text=a), Response(prompt_id=pid, text=b)
            s.add_all([ra, rb])
            s.flush()
            open_comparison(session=s, prompt_id=pid, response_a_id=ra.id, response_b_id=rb.id, target_votes=target)

    with db.session_scope(engine) as s:
        register_checkpoint(session=s, path=str(tiny), name="tiny", serve=True)
        add(s, pairs, votes)
    with db.session_scope(engine) as s:
        simulate(session=s, rule=f"contains:{WORD}", raters=votes, noise=noise, seed=seed)
    if unvoted:
        with db.session_scope(engine) as s:
            add(s, unvoted, votes)
    return settings


def dpo_gain(settings, tiny: Path, soft: bool, steps: int, seed: int, eval_prompts, n_eval: int) -> float:
    """Marker-word rate on held-out prompts after DPO on this world's majority rows."""
    from rlhf import db
    from rlhf.modeling.sample_stats import evaluate_policy
    from rlhf.services.dataset import preference_rows
    from rlhf.training.dpo import train_dpo
    from rlhf.training.params import build_params

    with db.session_scope(db.get_engine(settings.database_url)) as s:
        rows = preference_rows(session=s)
    params, _ = build_params("dpo", {"steps": steps, "seed": seed, "soft_labels": soft, "eval_samples": 0})
    name = f"dpo-{'soft' if soft else 'hard'}"
    out = settings.data_dir / name
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # per-step lines, bars
        train_dpo(base=str(tiny), rows=rows, output_dir=out, params=params, work_dir=settings.data_dir / f"w-{name}")
    return evaluate_policy(str(out), eval_prompts, word=WORD, n=n_eval, max_new_tokens=48).marker_rate


def reward_accuracy(settings, labels: str, steps: int, seed: int, eval_fraction: float, heldout) -> tuple[int, dict]:
    """Train a reward model through the product (``rlhf train reward``); (checkpoint id, figures)."""
    from rlhf import db
    from rlhf.jobs.training import execute_run
    from rlhf.models import JobStatus
    from rlhf.services.checkpoints import get_checkpoint
    from rlhf.services.runs import create_run, get_run
    from rlhf.training.scoring import load_reward_model, pairwise_accuracy

    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as s:
        run_id = create_run(
            session=s,
            algorithm="reward",
            labels=labels,
            params={"steps": steps, "seed": seed, "eval_fraction": eval_fraction},
        ).id
    with contextlib.redirect_stdout(io.StringIO()):
        status = execute_run(run_id, settings)
    with db.session_scope(engine) as s:
        run = get_run(session=s, run_id=run_id)
        if status is not JobStatus.succeeded:
            raise SystemExit(f"reward run failed: {run.error}")
        path, ckpt_id = get_checkpoint(session=s, checkpoint_id=run.output_checkpoint_id).path, run.output_checkpoint_id
        snapshot = run.snapshot
    model, tok = load_reward_model(path)
    return ckpt_id, {
        "accuracy": pairwise_accuracy(model, tok, heldout),
        "rows": snapshot["rows"],
        "machine_rows": snapshot.get("machine_rows", 0),
    }


def machine_label(settings, reward_id: int, min_confidence: float) -> dict:
    from rlhf import db
    from rlhf.jobs.labelling import execute_label_job
    from rlhf.models import JobStatus
    from rlhf.services.machine_labels import create_label_job, get_label_job

    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as s:
        job_id = create_label_job(session=s, reward_checkpoint_id=reward_id, min_confidence=min_confidence).id
    status = execute_label_job(job_id, settings)
    with db.session_scope(engine) as s:
        job = get_label_job(session=s, job_id=job_id)
        if status is not JobStatus.succeeded:
            raise SystemExit(f"label job failed: {job.error}")
        return job.result


def machine_label_accuracy(settings) -> float | None:
    """Share of machine labels that agree with the noise-free rule."""
    from sqlmodel import select

    from rlhf import db
    from rlhf.models import Comparison, Response, Vote
    from rlhf.services.simulate import parse_rule
    from rlhf.services.vote_kinds import machine_vote

    decide = parse_rule(f"contains:{WORD}")
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        votes = s.exec(select(Vote).where(machine_vote())).all()
        right = 0
        for v in votes:
            c = s.get(Comparison, v.comparison_id)
            right += decide(s.get(Response, c.response_a_id).text, s.get(Response, c.response_b_id).text) is v.choice
    return right / len(votes) if votes else None


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer seeds, pairs, steps and samples: a smoke run")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--pairs", type=int, default=64, help="pairs for DPO, three votes each")
    ap.add_argument("--steps", type=int, default=40, help="DPO and reward-model optimizer steps")
    ap.add_argument("--eval-samples", type=int, default=16, help="samples per held-out prompt (16 prompts)")
    ap.add_argument("--human", type=int, default=64, help="part 2: pairs with one person's vote each")
    ap.add_argument("--open", type=int, default=96, help="part 2: pairs left open for machine labels")
    ap.add_argument("--rm-seeds", type=int, default=3, help="part 2: repeats")
    ap.add_argument("--eval-fraction", type=float, default=0.35, help="part 2: held out for calibration")
    ap.add_argument("--min-confidence", type=float, default=0.9)
    ap.add_argument("--human-noise", type=float, default=0.1, help="part 2: flip probability of a person's vote")
    ap.add_argument("--part", choices=["1", "2", "both"], default="both", help="run one part only")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.pairs, args.steps, args.eval_samples = 2, 32, 30, 8
        args.human, args.open, args.rm_seeds = 64, 64, 1

    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    from rlhf.modeling.sample_stats import evaluate_policy, heldout_prompts
    from rlhf.modeling.tiny import build_tiny_model

    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="rlhf-noisy-"))
    with contextlib.redirect_stdout(io.StringIO()):
        tiny = build_tiny_model(work / "tiny")
    if args.part != "2":
        eval_prompts = heldout_prompts(16)
        base_rate = evaluate_policy(
            str(tiny), eval_prompts, word=WORD, n=args.eval_samples, max_new_tokens=48
        ).marker_rate
        dpo_part(args, tiny, eval_prompts, base_rate, work)
    if args.part != "1":
        reward_part(args, tiny, work)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{time.perf_counter() - start:.0f} s in all")


def dpo_part(args, tiny: Path, eval_prompts, base_rate: float, work: Path) -> None:
    print(
        f"part 1: DPO on {args.pairs} pairs x 3 simulated votes, {args.steps} steps, {args.seeds} seeds; "
        f"'{WORD}' in {16 * args.eval_samples} held-out samples: base {base_rate:.3f}"
    )
    print(
        f"{'noise':>5} | {'majority wrong':>14} | {'hard (majority)':>15} | {'soft (label_p)':>15} | "
        f"{'soft/hard gain':>14}"
    )
    for noise in args.noise:
        hard, soft, wrong = [], [], []
        for seed in range(args.seeds):
            pairs = own_pairs(tiny, args.pairs, seed=100 + seed)
            settings = voted_world(work / f"dpo-{noise}-{seed}", tiny, pairs, votes=3, noise=noise, seed=seed)
            wrong.append(_wrong_majorities(settings))
            hard.append(dpo_gain(settings, tiny, False, args.steps, seed, eval_prompts, args.eval_samples))
            soft.append(dpo_gain(settings, tiny, True, args.steps, seed, eval_prompts, args.eval_samples))
        gain_h, gain_s = statistics.fmean(hard) - base_rate, statistics.fmean(soft) - base_rate
        ratio = f"{gain_s / gain_h:.2f}" if gain_h > 0 else "n/a"
        print(
            f"{noise:5.1f} | {statistics.fmean(wrong):14.3f} | {_ms(hard):>15} | {_ms(soft):>15} | {ratio:>14}",
            flush=True,
        )


def reward_part(args, tiny: Path, work: Path) -> None:
    heldout = heldout_rows(tiny, per_prompt=8, seed=1234)
    print(
        f"\npart 2: reward model, {args.human} pairs x 1 person's vote (noise {args.human_noise}), "
        f"{args.open} pairs open, "
        f"{args.steps} steps, label at p >= {args.min_confidence}; accuracy on {len(heldout)} noise-free "
        f"held-out pairs, {args.rm_seeds} seed(s)"
    )
    people, both = [], []
    for seed in range(args.rm_seeds):
        pairs = own_pairs(tiny, args.human + args.open, seed=500 + seed)
        settings = voted_world(
            work / f"rm-{seed}",
            tiny,
            pairs[: args.human],
            votes=1,
            noise=args.human_noise,
            seed=seed,
            unvoted=pairs[args.human :],
        )
        reward_id, alone = reward_accuracy(settings, "human", args.steps, seed, args.eval_fraction, heldout)
        labelled = machine_label(settings, reward_id, args.min_confidence)
        _, plus = reward_accuracy(settings, "both", args.steps, seed, args.eval_fraction, heldout)
        cal = labelled["calibration"]
        people.append(alone["accuracy"])
        both.append(plus["accuracy"])
        print(
            f"  seed {seed}: people only {alone['accuracy']:.3f} ({alone['rows']} rows) | people + machine "
            f"{plus['accuracy']:.3f} ({plus['rows']} rows, {plus['machine_rows']} machine) | labelled "
            f"{labelled['labelled']}/{labelled['scored']}, right {machine_label_accuracy(settings) or 0:.3f}; "
            f"calibration on {cal['heldout']}: accuracy {cal['accuracy']:.3f}, ECE {cal['ece']:.3f}, "
            f"Brier {cal['brier']:.3f}, scale {cal['scale']:.3g}",
            flush=True,
        )
    print(
        f"people only {_ms(people)} | people + machine {_ms(both)} | ratio "
        f"{statistics.fmean(both) / statistics.fmean(people):.3f}"
    )


def _wrong_majorities(settings) -> float:
    """Share of the majority rows whose label goes against the noise-free rule."""
    from rlhf import db
    from rlhf.models import Choice
    from rlhf.services.dataset import preference_rows
    from rlhf.services.simulate import parse_rule

    decide = parse_rule(f"contains:{WORD}")
    with db.session_scope(db.get_engine(settings.database_url)) as s:
        rows = preference_rows(session=s)
    wrong = sum(decide(r["chosen"][0]["content"], r["rejected"][0]["content"]) is not Choice.a for r in rows)
    return wrong / len(rows) if rows else 0.0


if __name__ == "__main__":
    main()

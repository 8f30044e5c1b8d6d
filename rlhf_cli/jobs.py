"""CLI commands that start or follow work: generate, sample, simulate, train, runs, export, stats."""

from __future__ import annotations

import threading
from pathlib import Path

import typer

from rlhf.errors import InvalidInput, TrainingFailed
from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
from rlhf.modeling.tiny import HELDOUT_PROMPTS_PATH
from rlhf.settings import get_settings
from rlhf.training.params import parse_set_options
from rlhf.training.progress import RunProgress
from rlhf_cli.output import follow, print_json, print_table, session, to_jsonable

runs_app = typer.Typer(help="Training runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.command()(sample)
    app.command()(simulate)
    app.command()(train)
    app.command()(export)
    app.command()(stats)
    app.add_typer(runs_app, name="runs")


def run_in_process_or_poll(execute, job_id: int, poll, label: str) -> None:
    """With no broker, ``--wait`` runs the job right here; with one, it follows the worker."""
    if get_settings().embedded:
        worker = threading.Thread(target=execute, args=(job_id,), daemon=True)
        worker.start()
        follow(lambda: (not worker.is_alive() and poll()[0], *poll()[1:]), label)
        worker.join()
    else:
        follow(poll, label)


def wait_for_job(execute, job_id: int, get, label: str) -> dict:
    """``--wait`` for a generation or label job: run or follow it, then its result; not succeeded is an error."""

    def poll():
        with session() as s:
            j = get(session=s, job_id=job_id)
            return j.status.finished, None, None, j.status.value

    run_in_process_or_poll(execute, job_id, poll, label)
    with session() as s:
        j = get(session=s, job_id=job_id)
        if j.status.value != "succeeded":
            raise TrainingFailed(f"{label} {j.status.value}: {j.error}")
        return j.result


def generate(
    per_checkpoint: int = typer.Option(
        None, help="samples per checkpoint and prompt (default 2 with one serving checkpoint, else 1)"
    ),
    limit: int = typer.Option(None, help="at most this many prompts (fewest comparisons first)"),
    tag: str = typer.Option(None, help="only prompts with this tag"),
    target_votes: int = typer.Option(
        None, help="votes wanted per comparison (default: RLHF_VOTES_PER_COMPARISON, 1 unless set)"
    ),
    select: str = typer.Option(
        "random", help="pair selection: random, or uncertain (the pairs the reward model is least sure about first)"
    ),
    reward_model: str = typer.Option(
        None, help="reward checkpoint for --select uncertain (default: the newest one not retired)"
    ),
    pool: int = typer.Option(None, help="--select uncertain: prompts sampled to choose from (default 4 x --limit)"),
    max_new_tokens: int = typer.Option(64, help="longest response, in tokens"),
    temperature: float = typer.Option(1.0, help="sampling temperature"),
    ask_strength: bool = typer.Option(
        False, "--ask-strength", help="the Rate tab asks how much better on these pairs (RLHF_ASK_STRENGTH: on all)"
    ),
    rank: int = typer.Option(
        None, help="open a ranking of this many answers (3 to 6) per prompt instead of pairs: one judgement orders them"
    ),
    wait: bool = typer.Option(False, help="wait until the comparisons are open"),
) -> None:
    """Sample responses from serving checkpoints and open comparisons (or rankings, with --rank)."""
    from rlhf.jobs.generation import execute_generation_job
    from rlhf.jobs.submit import submit_generation
    from rlhf.services.generation_jobs import get_generation_job
    from workers.dispatch import job_queue

    with session() as s:
        job = submit_generation(
            session=s,
            queue=job_queue(),
            per_checkpoint=per_checkpoint,
            limit=limit,
            tag=tag,
            target_votes=target_votes,
            strategy=select,
            reward_checkpoint_id=reward_model,
            pool=pool,
            sampling={"max_new_tokens": max_new_tokens, "temperature": temperature},
            ask_strength=ask_strength,
            rank=rank,
        )
        job_id = job.id
    typer.echo(f"generation job {job_id} queued")
    if not wait:
        return

    r = wait_for_job(execute_generation_job, job_id, get_generation_job, f"generation job {job_id}")
    opened = (
        f"{r['rankings']} rankings ({r['comparisons']} pairs)" if "rankings" in r else f"{r['comparisons']} comparisons"
    )
    typer.echo(f"sampled {r['responses']} responses for {r['prompts']} prompts; opened {opened}")
    if r.get("strategy") == "uncertain" and r.get("comparisons"):
        typer.echo(
            f"uncertain: {r['comparisons']} of {r['candidates']} candidate pairs "
            f"({r['candidate_prompts']} prompts) by reward model {r['reward_checkpoint_id']}; "
            f"margin {r['margin_min']:.3g} to {r['margin_max']:.3g} "
            f"(median {r['margin_median']:.3g}; all candidates' median {r['candidate_margin_median']:.3g})"
        )


def sample(
    checkpoint: str,
    prompts: Path = typer.Option(None, help="JSONL/CSV/Parquet prompts (default: the bundled held-out prompts)"),
    n: int = typer.Option(1, help="samples per prompt"),
    limit: int = typer.Option(8, help="prompts to use"),
    seed: int = typer.Option(0),
    max_new_tokens: int = typer.Option(64),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Print generations from a checkpoint, for a quick look at a model."""
    from rlhf.services.checkpoints import get_checkpoint, model_ref
    from rlhf.services.prompts import parse_file

    with session() as s:
        path = model_ref(session=s, checkpoint=get_checkpoint(session=s, checkpoint_id=checkpoint))
    records = parse_file(prompts or HELDOUT_PROMPTS_PATH)[:limit]
    out = sample_checkpoint(
        path, [r.messages for r in records], n=n, params=SamplingParams(seed=seed, max_new_tokens=max_new_tokens)
    )
    rows = [
        {"prompt": r.messages[-1]["content"], "samples": [x.text for x in samples]} for r, samples in zip(records, out)
    ]
    if json_:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"> {row['prompt']}")
        for text in row["samples"]:
            typer.echo(f"  - {text}")


def simulate(
    rule: str = typer.Option(..., help="contains:WORD, avoids:WORD, shorter or longer"),
    raters: int = typer.Option(1, help="simulated raters (users sim-1 … sim-K)"),
    noise: float = typer.Option(
        0.0, help="probability of flipping a decided vote (in a ranking: each pair the rule tells apart)"
    ),
    limit: int = typer.Option(None, help="at most this many comparisons, then rankings up to the same total"),
    seed: int = typer.Option(0),
    strength: bool = typer.Option(
        False, "--strength", help="decided votes also say how much better, from how far apart the rule finds the two"
    ),
    minutes: float = typer.Option(
        None, help="stop before the first judgement past this budget of simulated rater-minutes"
    ),
) -> None:
    """Simulated raters vote on open comparisons, then order open rankings."""
    from rlhf.services.simulate import simulate as run_simulation

    with session() as s:
        counts = run_simulation(
            session=s,
            rule=rule,
            raters=raters,
            noise=noise,
            limit=limit,
            seed=seed,
            strength=strength,
            minutes=minutes,
        )
    ranked = {"rankings", "ranking_pairs", "ranking_decided"}
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "votes" and k not in ranked)
    said = f"recorded {counts.get('votes', 0)} votes" + (f" ({detail})" if detail else "")
    if counts.get("rankings"):
        said += (
            f" and {counts['rankings']} rankings ({counts['ranking_pairs']} pairs, {counts['ranking_decided']} decided)"
        )
    typer.echo(f"{said}; {counts.rater_minutes:.1f} simulated rater-minutes")


def train(
    algorithm: str = typer.Argument(..., help="sft, reward, dpo, ppo, rloo or grpo"),
    base: str = typer.Option(None, help="base checkpoint (default: the newest serving policy)"),
    reward_model: str = typer.Option(None, help="reward checkpoint (ppo, rloo, grpo)"),
    steps: int = typer.Option(None, help="optimizer steps"),
    set_: list[str] = typer.Option([], "--set", help="KEY=VALUE training parameter (repeatable)"),
    ties: str = typer.Option("drop", help="drop or keep tied votes"),
    aggregate: str = typer.Option(
        "majority", help="majority: one row per comparison, labelled by most of its votes; none: one row per vote"
    ),
    keep_flagged: bool = typer.Option(False, help="also train on raters flagged by their gold accuracy"),
    labels: str = typer.Option(
        "human",
        help="whose votes: "
        "a comma list of human (people's votes), machine (a reward model's labels, `rlhf label`) and judge "
        "(AI judges' votes, once a judge has earned a label_p), or all; both = human,machine. A person's vote "
        "wins its pair; else the label with the highest label_p",
    ),
    wait: bool = typer.Option(False, help="follow the run to its end; exit non-zero if it fails"),
    serve: bool = typer.Option(False, help="serve the new checkpoint when the run succeeds"),
) -> None:
    """Start a training run; prints the run id."""
    from rlhf.jobs.submit import submit_run
    from workers.dispatch import job_queue

    params = parse_set_options(set_)
    if steps is not None:
        params["steps"] = steps
    with session() as s:
        run = submit_run(
            session=s,
            queue=job_queue(),
            algorithm=algorithm,
            base_checkpoint_id=base,
            reward_checkpoint_id=reward_model,
            params=params,
            serve_on_success=serve,
            ties=ties,
            aggregate=aggregate,
            exclude_flagged=not keep_flagged,
            labels=labels,
        )
        run_id = run.id
    typer.echo(run_id)
    if wait:
        wait_for_run(run_id)


def wait_for_run(run_id: int) -> None:
    from rlhf.jobs.training import execute_run
    from rlhf.services.runs import get_run

    def poll():
        with session() as s:
            r = get_run(session=s, run_id=run_id)
            p = RunProgress.stored(r.progress)
            loss = p.number("loss") if p else None
            note = r.status.value + (f" loss {loss:.4f}" if loss is not None else "")
            return (r.status.finished, p.step if p else None, (p and p.max_steps) or r.params.get("steps"), note)

    run_in_process_or_poll(execute_run, run_id, poll, f"run {run_id}")
    with session() as s:
        r = get_run(session=s, run_id=run_id)
        if r.status.value != "succeeded":
            raise TrainingFailed(f"run {run_id} {r.status.value}: {(r.error or '').splitlines()[0] if r.error else ''}")
        typer.echo(f"run {run_id} succeeded: checkpoint {r.output_checkpoint_id}", err=True)


def _run_row(r) -> dict:
    from rlhf.services.runs import run_summary

    progress = RunProgress.stored(r.progress)
    return {**run_summary(r), "step": progress.step if progress else None}


@runs_app.command("list")
def runs_list(json_: bool = typer.Option(False, "--json"), limit: int = typer.Option(50)) -> None:
    """Training runs, newest first."""
    from rlhf.services.runs import list_runs

    with session() as s:
        rows = [_run_row(r) for r in list_runs(session=s, limit=limit)]
    if json_:
        print_json(rows)
    else:
        print_table(
            rows, ["id", "algorithm", "status", "step", "base_checkpoint_id", "output_checkpoint_id", "created_at"]
        )


@runs_app.command("show")
def runs_show(run_id: int, json_: bool = typer.Option(False, "--json")) -> None:
    """A run's status, parameters, metrics, data snapshot and output checkpoint."""
    from rlhf.services.runs import get_run, run_log

    with session() as s:
        row = to_jsonable(_run_row(get_run(session=s, run_id=run_id)))
        row["log"] = [{"step": e.step, **e.values} for e in run_log(session=s, run_id=run_id)]
    if json_:
        print_json(row)
        return
    for key in (
        "id",
        "algorithm",
        "status",
        "base_checkpoint_id",
        "reward_checkpoint_id",
        "output_checkpoint_id",
        "votes",
        "created_at",
        "started_at",
        "finished_at",
    ):
        typer.echo(f"{key:22} {row[key] if row[key] is not None else '-'}")
    typer.echo(f"{'params':22} {row['params']}")
    if row["snapshot"]:
        typer.echo(f"{'snapshot':22} {row['snapshot']}")
    for k, v in sorted((row["metrics"] or {}).items()):
        typer.echo(f"  {k:20} {v:.4g}" if isinstance(v, float) else f"  {k:20} {v}")
    if row["log"]:
        last = row["log"][-1]
        typer.echo(
            f"{'last log':22} "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items())
        )
    if row["error"]:
        typer.echo(f"error: {row['error']}")


@runs_app.command("cancel")
def runs_cancel(run_id: int) -> None:
    """Cancel a queued run, or stop a running one."""
    from rlhf.services.runs import cancel_run

    with session() as s:
        r = cancel_run(session=s, run_id=run_id)
        typer.echo(f"run {run_id}: {'cancelled' if r.status.finished else 'stop requested'}")


def export(
    path: Path,
    format: str = typer.Option(None, "--format", help="jsonl or parquet (default: by extension)"),
    kind: str = typer.Option(
        "preference",
        "--kind",
        help="preference: chosen/rejected pairs (every source: "
        "queue, arena, written, ranking); sft: rater-written "
        "demonstrations as conversational messages",
    ),
    source: str = typer.Option(
        "",
        "--source",
        help="preference pairs of these comparison sources only, comma-separated: queue, arena, written, ranking",
    ),
    ties: str = typer.Option("drop", help="drop or keep tied votes"),
    aggregate: str = typer.Option(
        "majority",
        help="majority: one row per comparison, labelled by most of "
        "its votes, with its agreement; none: one row per vote",
    ),
    keep_flagged: bool = typer.Option(False, help="also export raters flagged by their gold accuracy"),
    labels: str = typer.Option(
        "human",
        "--labels",
        help="whose labels make preference pairs: "
        "a comma list of human (people's votes), machine (a reward model's labels, `rlhf label`) and judge "
        "(AI judges' votes, once a judge has earned a label_p), or all; both = human,machine. A person's vote "
        "wins its pair; else the label with the highest label_p",
    ),
    margins: bool = typer.Option(
        False,
        "--margins",
        help="also write TRL's margin column on every preference row, from its strength "
        "(slightly 1/3, clearly 2/3, much better 1; 0 where none was said)",
    ),
) -> None:
    """Export preference pairs or demonstrations in TRL's conversational formats (gold pairs and excluded raters
    left out)."""
    from rlhf.services.dataset import export as export_rows
    from rlhf.services.dataset import parse_sources
    from rlhf.services.demonstrations import export_sft

    if format and format not in ("jsonl", "parquet"):
        raise InvalidInput(f"unknown format {format!r}; use jsonl or parquet")
    if kind not in ("preference", "sft"):
        raise InvalidInput(f"unknown kind {kind!r}; use preference or sft")
    if kind == "sft" and (labels != "human" or source or margins):
        raise InvalidInput(
            "--labels, --source and --margins are for preference pairs; demonstrations are written by people"
        )
    with session() as s:
        if kind == "sft":
            n = export_sft(session=s, path=path, fmt=format, exclude_flagged=not keep_flagged)
        else:
            n = export_rows(
                session=s,
                path=path,
                fmt=format,
                ties=ties,
                aggregate=aggregate,
                exclude_flagged=not keep_flagged,
                sources=parse_sources(source),
                labels=labels,
                margins=margins,
            )
    typer.echo(f"wrote {n} {'demonstrations' if kind == 'sft' else 'preference pairs'} to {path}")


def stats(json_: bool = typer.Option(False, "--json")) -> None:
    """Counts (prompts, responses, comparisons, votes, runs, checkpoints) and the quality of the votes:
    agreement between raters on shared comparisons, Krippendorff's alpha, gold accuracy, flagged raters."""
    from rlhf.services.quality import measure
    from rlhf.services.stats import overall_stats

    with session() as s:
        data = {**overall_stats(session=s), "quality": measure(session=s).as_dict()}
    if json_:
        print_json(data)
        return
    quality = data.pop("quality")
    for k, v in data.items():
        typer.echo(f"{k:18} {v}")
    raters = quality.pop("raters")
    for k, v in quality.items():
        typer.echo(f"{k:18} {v}")
    if raters:
        typer.echo("")
        print_table(
            raters, ["name", "votes", "agreement", "pairs", "gold_accuracy", "gold_answered", "flagged", "excluded"]
        )

"""``rlhf judges add|list|show`` and ``rlhf judge run``: AI judges, their audit against people, their jobs.

The command line runs as the operator, so it registers judges without a role check (the REST
API leaves that to admins).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from rlhf.errors import InvalidInput, RLHFError
from rlhf_cli.jobs import wait_for_job
from rlhf_cli.output import print_json, print_table, session

judges_app = typer.Typer(help="AI judges: OpenAI-compatible endpoints that vote on pairs.", no_args_is_help=True)
judge_app = typer.Typer(help="Run an AI judge.", no_args_is_help=True)

# The audit's headline, as `judges list` shows it (the REST list has the same fields).
SUMMARY = (
    "votes",
    "overlap",
    "agreement",
    "agreement_without_ties",
    "kappa",
    "position_consistency",
    "label_p",
    "label_p_from",
    "trains",
    "reason",
)
# Where label_p comes from, in words.
LABEL_P_FROM = {
    "gold": "its accuracy on gold pairs",
    "corrected": "its agreement without ties, corrected for the people's own accuracy",
    "agreement": "its agreement without ties (the people's accuracy is not measured)",
}
# The service's parameter keys that this command spells differently (None: a positional argument).
_OWN_FLAGS: dict[str, str | None] = {"name": None, "checkpoint_id": "checkpoint", "timeout_s": "timeout"}


def register(app: typer.Typer) -> None:
    app.add_typer(judges_app, name="judges")
    app.add_typer(judge_app, name="judge")


@contextmanager
def _worded() -> Iterator[None]:
    """A refusal names this command's own flag (``--checkpoint``, not the service's ``checkpoint_id``)."""
    try:
        yield
    except RLHFError as exc:
        if exc.param in _OWN_FLAGS:
            exc.param = _OWN_FLAGS[exc.param]
        raise


def _read_template(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file", param="template")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text", param="template") from None


@judges_app.command("add")
def judges_add(
    name: str = typer.Argument(..., help="a unique name: letters, digits and _ . -"),
    url: str = typer.Option(None, help="base URL of an OpenAI-compatible server (with or without /v1)"),
    model: str = typer.Option(None, help="the model name that server knows it by"),
    checkpoint: str = typer.Option(None, help="instead of --url: a serving policy checkpoint (id or name)"),
    api_key_env: str = typer.Option(
        None, help="the environment variable holding its API key where jobs run (the key is never stored)"
    ),
    template: Path = typer.Option(
        None, help="a Jinja2 prompt template using {{ a }} and {{ b }}, asking for [[A]], [[B]] or [[C]]"
    ),
    swap: bool = typer.Option(True, "--swap/--no-swap", help="ask in both orders; a verdict that flips stores no vote"),
    concurrency: int = typer.Option(4, help="requests in flight at once (1 to 64)"),
    timeout: float = typer.Option(60.0, help="seconds per request (1 to 600)"),
    audit_rate: float = typer.Option(0.1, help="share of the pairs it labels that still go to people (0 to 1)"),
) -> None:
    """Register an AI judge: --url URL --model MODEL, or --checkpoint ID."""
    from rlhf.services.judges import register_judge

    text = _read_template(template) if template is not None else None
    with _worded(), session() as s:
        judge = register_judge(
            session=s,
            name=name,
            url=url,
            model=model,
            checkpoint_id=checkpoint,
            api_key_env=api_key_env,
            template=text,
            swap=swap,
            concurrency=concurrency,
            timeout_s=timeout,
            audit_rate=audit_rate,
        )
        typer.echo(f"judge {judge.name} registered with id {judge.id}")


def _judge_row(j) -> dict[str, Any]:
    return {
        "id": j.id,
        "name": j.name,
        "url": j.url,
        "model": j.model,
        "checkpoint_id": j.checkpoint_id,
        "api_key_env": j.api_key_env,
        "template": j.template,
        "swap": j.swap,
        "concurrency": j.concurrency,
        "timeout_s": j.timeout_s,
        "audit_rate": j.audit_rate,
        "created_at": j.created_at,
    }


def _asks(row: dict[str, Any]) -> str:
    return f"{row['url']} ({row['model']})" if row["url"] else f"checkpoint {row['checkpoint_id']}"


@judges_app.command("list")
def judges_list(json_: bool = typer.Option(False, "--json")) -> None:
    """Judges, with the headline of their audit against people."""
    from rlhf.services.judge_audit import audit
    from rlhf.services.judges import list_judges
    from rlhf.services.soft_labels import rater_reliability
    from rlhf.settings import get_settings

    min_overlap = get_settings().judge_min_overlap
    with session() as s:
        found = list_judges(session=s)
        reliability = rater_reliability(session=s) if found else {}  # measured once for all of them
        rows = []
        for j in found:
            figures = audit(session=s, judge=j, min_overlap=min_overlap, reliability=reliability)
            rows.append({**_judge_row(j), "audit": {k: figures.get(k) for k in SUMMARY}})
    if json_:
        print_json(rows)
        return
    table = [{**r, **r["audit"], "asks": _asks(r), "consistency": r["audit"]["position_consistency"]} for r in rows]
    print_table(table, ["id", "name", "asks", "votes", "overlap", "agreement", "kappa", "consistency", "label_p"])


@judges_app.command("show")
def judges_show(
    judge: str = typer.Argument(..., help="id or name"), json_: bool = typer.Option(False, "--json")
) -> None:
    """A judge and its audit against people: agreement, kappa, position consistency, length bias, label_p."""
    from rlhf.services.judge_audit import audit
    from rlhf.services.judges import get_judge
    from rlhf.settings import get_settings

    with session() as s:
        found = get_judge(session=s, judge=judge)
        figures = audit(session=s, judge=found, min_overlap=get_settings().judge_min_overlap)
        row = {**_judge_row(found), "audit": figures}
    if json_:
        print_json(row)
        return
    for line in describe(row):
        typer.echo(line)


def _share(value: float | None, count: int, of: str) -> str:
    return f"{value:.3f} on {count} {of}" if value is not None else f"- ({count} {of})"


def describe(row: dict[str, Any]) -> list[str]:
    """A judge and its audit, one figure a line, each with the count it rests on."""
    a = row["audit"]
    key = f", key from ${row['api_key_env']}" if row["api_key_env"] else ""
    lines = [
        f"judge {row['name']} (id {row['id']})",
        f"{'asks':24} {_asks(row)}{key}",
        f"{'template':24} {'its own' if row['template'] else 'the default'}",
        f"{'settings':24} {'both orders' if row['swap'] else 'one order'}, concurrency {row['concurrency']}, "
        f"timeout {row['timeout_s']:g} s, audit rate {row['audit_rate']:g}",
        f"{'votes':24} {a['votes']} (pairs judged {a['verdicts']}: {a['inconsistent']} inconsistent, "
        f"{a['unparseable']} unparseable)",
        f"{'agreement':24} {_share(a['agreement'], a['agreement_pairs'], 'pairs voted by both people and the judge')}",
        f"{'agreement without ties':24} "
        f"{_share(a['agreement_without_ties'], a['agreement_without_ties_pairs'], 'pairs where both chose a side')}",
        f"{'kappa (κ)':24} {_share(a['kappa'], a['agreement_pairs'], 'pairs')}",
        f"{'position consistency':24} "
        f"{_share(a['position_consistency'], a['judged_both_orders'], 'pairs judged in both orders')}",
    ]
    bias = a["length_bias"]
    judge_long = "-" if bias["judge"] is None else f"{bias['judge']:.3f}"
    people_long = "-" if bias["people"] is None else f"{bias['people']:.3f}"
    lines.append(
        f"{'length bias':24} chose the longer answer {judge_long} of {bias['pairs']} pairs; "
        f"people {people_long} of their {bias['people_votes']} votes on them"
    )
    gold = a.get("gold")
    gold_text = f"accuracy {gold['accuracy']:.3f} on {gold['pairs']} pairs" if gold else "none voted"
    lines.append(f"{'gold':24} {gold_text}")
    if a["label_p"] is None:
        lines.append(f"{'label_p':24} none: {a.get('reason') or 'its votes do not train'}")
    else:
        source = LABEL_P_FROM.get(a["label_p_from"], a["label_p_from"])
        if a["label_p_from"] == "corrected" and a.get("people_accuracy") is not None:
            source += f" ({a['people_accuracy']:.3f})"
        lines.append(f"{'label_p':24} {a['label_p']:.3f}, from {source}")
        if not a.get("trains"):
            lines.append(f"{'trains':24} no: {a.get('reason', '')}")
    return lines


@judge_app.command("run")
def judge_run(
    judge: str = typer.Argument(..., help="the judge's id or name"),
    source: str = typer.Option("all", help="which comparisons: queue, arena, written or all"),
    limit: int = typer.Option(None, help="at most this many pairs (default: every pair it has not judged)"),
    wait: bool = typer.Option(False, help="wait until its votes are stored; exit non-zero if the job fails"),
    json_: bool = typer.Option(False, "--json", help="print only JSON: the job, with its result after --wait"),
) -> None:
    """The judge votes on the comparisons it has not judged yet (a worker job; --wait runs it here)."""
    from rlhf.jobs.judging import execute_judge_job
    from rlhf.jobs.submit import submit_judge
    from rlhf.models import stored_id
    from rlhf.services.judges import get_judge_job
    from workers.dispatch import job_queue

    with _worded(), session() as s:
        job = submit_judge(session=s, queue=job_queue(), judge=judge, source=source, limit=limit)
        job_id = stored_id(job)
    if not wait:
        print_json({"job_id": job_id, "status": "queued"}) if json_ else typer.echo(f"judge job {job_id} queued")
        return
    if not json_:
        typer.echo(f"judge job {job_id} queued")
    r = wait_for_job(execute_judge_job, job_id, get_judge_job, f"judge job {job_id}")
    if json_:
        print_json({"job_id": job_id, "status": "succeeded", "result": r})
        return
    v = r["verdicts"]
    typer.echo(
        f"judged {r['pairs_judged']} pairs: {r['voted']} votes (a {v['a']}, b {v['b']}, tie {v['tie']}), "
        f"{r['inconsistent']} inconsistent, {r['unparseable']} unparseable; "
        f"{r['tokens']} tokens in {r['seconds']:g} s"
    )
    if r.get("pairs_skipped"):
        typer.echo(f"{r['pairs_skipped']} pairs skipped: another job of this judge got there first")

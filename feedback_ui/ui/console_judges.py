"""The console's AI-judges section: register a judge (admins), run it, and read its audit.

A judge job runs in a worker (it calls the judge's endpoint); the section shows its outcome
and the judge's audit against people: agreement, κ, position consistency, length bias, and
the label_p its votes train with, or why they do not train yet.
"""

from html import escape

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, message
from rlhf.errors import RLHFError
from rlhf.jobs.submit import submit_judge
from rlhf.models import Role
from rlhf.services import judges as judges_svc
from rlhf.services.judge_audit import audit


def _share(value, count) -> str:
    return "–" if value is None else f"{value:.3f} ({count} pairs)"


def audit_html(report: dict) -> str:
    """A judge's audit as the console shows it: each figure with the count it rests on."""
    lb = report.get("length_bias") or {}
    gold = report.get("gold")
    rows = [
        ("Votes", str(report["votes"])),
        ("Pairs voted by both people and the judge", str(report["overlap"])),
        ("Agreement with people's majority", _share(report["agreement"], report["agreement_pairs"])),
        (
            "Agreement without ties",
            _share(report["agreement_without_ties"], report["agreement_without_ties_pairs"]),
        ),
        ("Cohen's κ", "–" if report["kappa"] is None else f"{report['kappa']:.3f}"),
        (
            "Position consistency (same verdict in both orders)",
            _share(report.get("position_consistency"), report.get("judged_both_orders", 0)),
        ),
        ("Inconsistent / unparseable", f"{report.get('inconsistent', 0)} / {report.get('unparseable', 0)}"),
        (
            "Chose the longer answer: judge / people",
            "–"
            if not lb or lb.get("judge") is None
            else f"{lb['judge']:.3f} / {lb['people'] if lb.get('people') is None else format(lb['people'], '.3f')}"
            f" ({lb['pairs']} pairs)",
        ),
        ("Gold accuracy", "–" if not gold else _share(gold["accuracy"], gold["pairs"])),
    ]
    if report["label_p"] is not None:
        rows.append(("label_p (its votes train with)", f"{report['label_p']:.3f}, from {report['label_p_from']}"))
        if not report.get("trains"):
            rows.append(("Trains", f"no: {report.get('reason', '')}"))
    else:
        rows.append(("label_p", f"none: {report.get('reason', '')}"))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="judge-audit" data-judge="{escape(report["name"])}">{body}</table>'


def job_html(job) -> str:
    if job is None:
        return ""
    head = f"Judge job #{job.id}: {job.status.value}"
    if job.error:
        return message(f"{head}. {job.error.splitlines()[0]}", "error")
    r = job.result or {}
    if not r:
        return message(head + ".")
    return message(
        f"{head}. Judged {r.get('pairs_judged', 0)} pairs: {r.get('voted', 0)} voted, "
        f"{r.get('inconsistent', 0)} inconsistent across orders, {r.get('unparseable', 0)} unparseable; "
        f"{r.get('tokens', 0)} tokens in {r.get('seconds', 0):.1f} s.",
        "ok",
    )


def build_judges_section(ctx: UIContext) -> gr.Accordion:
    with gr.Accordion("AI judges", open=False) as section:
        with gr.Row():
            judge = gr.Dropdown([], value=None, label="Judge", min_width=200, elem_id="judge-pick")
            source = gr.Dropdown(list(judges_svc.SOURCES), value="all", label="Pairs from", min_width=120)
            # The browser sends an empty box as 0, so 0 means "all" too (a minimum of 1 would refuse it).
            limit = gr.Number(value=None, label="At most (empty or 0: all)", precision=0, minimum=0, min_width=120)
            run = gr.Button("Judge pairs", variant="primary", min_width=160, elem_id="judge-run")
            check = gr.Button("Refresh", size="md", min_width=100, elem_id="judge-refresh")
        job_id = gr.State(None)
        status = gr.HTML(elem_id="judge-status")
        report = gr.HTML(elem_id="judge-audit")
        with gr.Accordion("Register a judge (admins)", open=False):
            with gr.Row():
                name = gr.Textbox(label="Name", elem_id="judge-name")
                url = gr.Textbox(label="Base URL (OpenAI-compatible)", elem_id="judge-url")
                model = gr.Textbox(label="Model", elem_id="judge-model")
                key_env = gr.Textbox(label="API key variable (optional)", elem_id="judge-key-env")
                swap = gr.Checkbox(value=True, label="Ask in both orders")
            add = gr.Button("Register", elem_id="judge-add")
            added = gr.HTML(elem_id="judge-added")

    def choices(request: gr.Request, selected=None):
        require(ctx, request, Role.engineer)
        with ctx.session() as session:
            found = [(f"{j.name} (#{j.id})", j.id) for j in judges_svc.list_judges(session=session)]
        ids = [v for _, v in found]
        return gr.Dropdown(choices=found, value=selected if selected in ids else (ids[-1] if ids else None))

    def show(judge_id, request: gr.Request):
        require(ctx, request, Role.engineer)
        if not judge_id:
            return ""
        with ctx.session() as session:
            found = judges_svc.get_judge(session=session, judge=int(judge_id))
            return audit_html(audit(session=session, judge=found, min_overlap=ctx.settings.judge_min_overlap))

    def do_add(name_, url_, model_, key_env_, swap_, request: gr.Request):
        user = require(ctx, request, Role.admin)
        try:
            with ctx.session() as session:
                found = judges_svc.register_judge(
                    session=session,
                    name=name_.strip(),
                    url=url_.strip(),
                    model=model_.strip(),
                    api_key_env=key_env_.strip() or None,
                    swap=swap_,
                    created_by=user.id,
                    settings=ctx.settings,
                )
                session.commit()
                new_id = found.id
            return message(f"Registered judge {name_.strip()} (#{new_id}).", "ok"), choices(request, new_id)
        except RLHFError as exc:
            return error_message(exc), gr.Dropdown()

    def do_run(judge_id, source_, limit_, request: gr.Request):
        user = require(ctx, request, Role.engineer)
        if not judge_id:
            return None, message("Register a judge first.", "warn")
        try:
            with ctx.session() as session:
                job = submit_judge(
                    session=session,
                    queue=ctx.jobs,
                    judge=int(judge_id),
                    source=source_,
                    limit=int(limit_) if limit_ else None,
                    created_by=user.id,
                )
                return job.id, job_html(job)
        except RLHFError as exc:
            return None, error_message(exc)

    def do_check(current, judge_id, request: gr.Request):
        require(ctx, request, Role.engineer)
        with ctx.session() as session:
            job = judges_svc.get_judge_job(session=session, job_id=int(current)) if current else None
            html = job_html(job)
        return html, show(judge_id, request)

    section.expand(choices, None, [judge], api_visibility="private", show_progress="hidden")
    judge.change(show, [judge], [report], api_visibility="private", show_progress="hidden")
    add.click(do_add, [name, url, model, key_env, swap], [added, judge], api_visibility="private")
    run.click(do_run, [judge, source, limit], [job_id, status], api_visibility="private")
    check.click(do_check, [job_id, judge], [status, report], api_visibility="private")
    return section

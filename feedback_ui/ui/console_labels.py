"""The console's machine-label section: a reward model labels the open pairs it is sure about.

The job runs in a worker (the reward model is never loaded in the web process); the section
shows its outcome: how many pairs were labelled and left to people, and the calibration's
reliability on the reward model's held-out human votes.
"""

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, message
from rlhf.errors import RLHFError
from rlhf.jobs.submit import submit_label
from rlhf.models import CheckpointKind, Role
from rlhf.services import machine_labels
from rlhf.services.checkpoints import list_checkpoints


def job_html(job) -> str:
    """One label job as the console shows it."""
    if job is None:
        return ""
    head = f"Label job #{job.id}: {job.status.value}"
    if job.error:
        return message(f"{head}. {job.error.splitlines()[0]}", "error")
    r = job.result or {}
    if not r:
        return message(head + ".")
    c = r["calibration"]
    return message(
        (
            f"{head}. Labelled {r['labelled']} of {r['scored']} open pairs at p ≥ {r['min_confidence']:g}; "
            f"{r['left_for_people']} go to people first. Calibration on {c['heldout']} held-out human pairs: "
            f"accuracy {c['accuracy']:.3f}, ECE {c['ece']:.3f}, Brier {c['brier']:.3f}, scale {c['scale']:.4g}."
        ),
        "ok",
    )


def build_labels_section(ctx: UIContext) -> gr.Accordion:
    with gr.Accordion("Machine labels", open=False) as section:
        with gr.Row():
            reward = gr.Dropdown([], value=None, label="Reward model", min_width=200, elem_id="label-reward")
            confidence = gr.Number(
                value=0.9,
                label="Minimum confidence (0.5 < P < 1)",
                minimum=0.5,
                maximum=1.0,
                step=0.01,
                elem_id="label-min-confidence",
            )
            start = gr.Button("Label the pairs it is sure of", variant="primary", min_width=200)
            check = gr.Button("Refresh", size="md", min_width=100, elem_id="label-refresh")
        job_id = gr.State(None)
        status = gr.HTML(elem_id="label-status")

    def reward_models(request: gr.Request):
        require(ctx, request, Role.engineer)
        with ctx.session() as session:
            ckpts = list_checkpoints(session=session, kind=CheckpointKind.reward)
        choices = [(f"#{c.id} {c.name}", c.id) for c in reversed(ckpts)]
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

    def do_start(reward_id, p, request: gr.Request):
        user = require(ctx, request, Role.engineer)
        if not reward_id:
            return None, message("Pick a reward model first (train one with the reward algorithm).", "warn")
        try:
            with ctx.session() as session:
                job = submit_label(
                    session=session,
                    queue=ctx.jobs,
                    reward_checkpoint_id=int(reward_id),
                    min_confidence=p,
                    created_by=user.id,
                )
                return job.id, job_html(job)
        except RLHFError as exc:
            return None, error_message(exc)

    def do_check(current, request: gr.Request):
        require(ctx, request, Role.engineer)
        if not current:
            return ""
        with ctx.session() as session:
            return job_html(machine_labels.get_label_job(session=session, job_id=int(current)))

    section.expand(reward_models, None, [reward], api_visibility="private", show_progress="hidden")
    start.click(do_start, [reward, confidence], [job_id, status], api_visibility="private")
    check.click(do_check, [job_id], [status], api_visibility="private")
    return section

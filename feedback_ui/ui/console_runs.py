"""Console sections for training: start a run, watch it live, and the checkpoint registry.

A run is queued through :func:`rlhf.jobs.submit.submit_run` (the same call as the REST
API and the CLI), so its data snapshot is frozen when the engineer clicks. The live view
reads the run row and :func:`rlhf.services.runs.run_log` on every tick of the console's
timer; nothing here waits on training.
"""

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, fmt_time, message, optional_int
from rlhf.errors import RLHFError
from rlhf.jobs.submit import serve, submit_run
from rlhf.models import Checkpoint, CheckpointKind, CheckpointStatus, JobStatus, Role, TrainingRun
from rlhf.services import checkpoints as ckpt_svc
from rlhf.services import runs as runs_svc
from rlhf.services.dataset import Snapshot
from rlhf.training.params import describe, parse_set_options
from rlhf.training.progress import RunProgress

RUN_HEADERS = ["ID", "Algorithm", "Status", "Step", "Base", "Output", "Votes", "Created", "Finished", "Error"]
CKPT_HEADERS = ["ID", "Name", "Kind", "Status", "Parent", "Run", "Created", "Path"]
RUN_WIDTHS = ["50px", "110px", "100px", "70px", "220px", "160px", "60px", "180px", "180px", "320px"]
CKPT_WIDTHS = ["50px", "200px", "80px", "100px", "220px", "50px", "180px", "320px"]
_NOT_CURVES = {"step", "max_steps", "epoch", "learning_rate", "grad_norm", "elapsed_s"}
_STATUS_KIND = {"succeeded": "ok", "failed": "error", "cancelled": "warn", "running": "info", "queued": "info"}


@dataclass
class TrainingSection:
    """The components the console's timer refreshes."""

    refresh_inputs: list
    refresh_outputs: list
    refresh: Callable[..., tuple]


def _label(ckpt: Checkpoint | None) -> str:
    return f"#{ckpt.id} {ckpt.name}" if ckpt else ""


def _checkpoints(ctx: UIContext) -> list[Checkpoint]:
    with ctx.session() as session:
        return ckpt_svc.list_checkpoints(session=session)


def _runs(ctx: UIContext) -> list[TrainingRun]:
    with ctx.session() as session:
        return runs_svc.list_runs(session=session, limit=50)


def _step(run: TrainingRun) -> str:
    progress = RunProgress.stored(run.progress)
    return progress.step_text if progress else ""


def _rows_trained(run: TrainingRun) -> int | str:
    snapshot = Snapshot.of(run)
    if snapshot is None:
        return ""
    return snapshot.rows if snapshot.built else f"{snapshot.vote_count} votes (rows not built yet)"


def run_rows(runs: list[TrainingRun], by_id: dict[int, Checkpoint]) -> pd.DataFrame:
    rows = [
        [
            r.id,
            r.algorithm.value,
            r.status.value,
            _step(r),
            _label(by_id.get(r.base_checkpoint_id)),
            _label(by_id.get(r.output_checkpoint_id)),
            _rows_trained(r),
            fmt_time(r.created_at),
            fmt_time(r.finished_at),
            r.error or "",
        ]
        for r in runs
    ]
    return pd.DataFrame(rows, columns=RUN_HEADERS)


def checkpoint_rows(ckpts: list[Checkpoint]) -> pd.DataFrame:
    by_id = {c.id: c for c in ckpts}
    rows = [
        [
            c.id,
            c.name,
            c.kind.value,
            c.status.value,
            _label(by_id.get(c.parent_id)) if c.parent_id else "",
            c.run_id or "",
            fmt_time(c.created_at),
            c.path,
        ]
        for c in reversed(ckpts)
    ]
    return pd.DataFrame(rows, columns=CKPT_HEADERS)


def curves(entries: list) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Long-format frames (step, value, series) for the loss plot and the reward/KL plot."""
    loss, reward = [], []
    for entry in entries:
        for key, value in (entry.values or {}).items():
            if key in _NOT_CURVES or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if "loss" in key:
                loss.append((entry.step, float(value), key))
            elif "reward" in key or "kl" in key or "margin" in key:
                reward.append((entry.step, float(value), key))
    return _frame(loss), _frame(reward)


def _frame(points: list[tuple[int, float, str]]) -> pd.DataFrame | None:
    # No points is no frame: a plot whose first value is an empty frame keeps that frame's
    # (empty) colour scale and axis types, and later lines are drawn without a stroke.
    if not points:
        return None
    return pd.DataFrame(
        {
            "step": pd.Series([p[0] for p in points], dtype="int64"),
            "value": pd.Series([p[1] for p in points], dtype="float64"),
            "series": pd.Series([p[2] for p in points], dtype="object"),
        }
    )


def run_detail(run: TrainingRun | None, by_id: dict[int, Checkpoint]) -> str:
    if run is None:
        return message("No runs yet: start one above.")
    parts = [f"Run #{run.id} · {run.algorithm.value} · {run.status.value}"]
    progress = RunProgress.stored(run.progress)
    if run.status is JobStatus.running and progress and progress.evaluating:
        parts.append("training done, evaluating the new checkpoint")
    elif progress:
        parts.append(f"step {progress.step_text}")
    # While it runs, the latest logged values; once finished, the metrics the trainer reported.
    values = ((progress.values if progress else {}) if run.status is JobStatus.running else run.metrics) or {}
    for key in ("loss", "final_loss", "eval_accuracy", "accuracy", "reward_last"):
        if isinstance(values.get(key), (int, float)):
            parts.append(f"{key} {values[key]:.4g}")
            break
    output = by_id.get(run.output_checkpoint_id) if run.output_checkpoint_id else None
    if run.output_checkpoint_id:
        parts.append(f"output {_label(output)}")
    out = message(" · ".join(parts), _STATUS_KIND.get(run.status.value, "info"))
    if output is not None and output.status is CheckpointStatus.serving:
        out += message(f"{_label(output)} is now serving: its answers enter the next comparisons.", "ok")
    if run.status is JobStatus.succeeded:
        out += _results_html(run)
    if run.error:
        out += message(f"Error: {run.error}", "error")
    return f'<div id="run-detail">{out}</div>'


def _results_html(run: TrainingRun) -> str:
    """The finished run's evaluation and the data it trained on, as ``rlhf runs show`` has them."""
    rows = [
        (key.removeprefix("eval/").replace("_", " "), value)
        for key, value in sorted((run.metrics or {}).items())
        if key.startswith("eval/") and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    snapshot = Snapshot.of(run)
    if snapshot is not None:
        rows += (
            [
                ("trained on", f"{snapshot.rows} rows from {snapshot.vote_count} votes"),
                ("snapshot hash", snapshot.hash),
            ]
            if snapshot.built
            else [("frozen", f"{snapshot.vote_count} votes; the worker builds the rows when the run starts")]
        )
    if not rows:
        return ""
    body = "".join(
        f"<tr><th>{html.escape(name)}</th><td><code>"
        f"{html.escape(f'{value:.4g}' if isinstance(value, float) else str(value))}</code></td></tr>"
        for name, value in rows
    )
    return f'<div class="rl-md" id="run-results"><table><tbody>{body}</tbody></table></div>'


def parse_params(steps: str | None, extra: str | None) -> dict[str, Any]:
    """The steps field plus KEY=VALUE lines (blank lines and # comments skipped), as for ``--set``."""
    lines = [ln.strip() for ln in (extra or "").splitlines() if ln.strip() and not ln.strip().startswith("#")]
    params = parse_set_options(lines)
    n_steps = optional_int(steps, "steps")
    if n_steps is not None:
        params["steps"] = n_steps
    return params


def params_help(algorithm: str) -> str:
    try:
        rows = describe(algorithm)
    except RLHFError as exc:
        return error_message(exc)
    body = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td><code>{html.escape(repr(default))}</code>"
        f"</td><td>{html.escape(text)}</td></tr>"
        for name, default, text in rows
    )
    return (
        f'<div class="rl-md"><table><thead><tr><th>parameter</th><th>default</th><th>meaning</th></tr>'
        f"</thead><tbody>{body}</tbody></table><p>Any TRL config field: <code>trl.NAME=VALUE</code>.</p></div>"
    )


def _choices(ckpts: list[Checkpoint]) -> tuple[list, list, list]:
    policies = [(f"{_label(c)} ({c.status.value})", c.id) for c in ckpts if c.kind is CheckpointKind.policy]
    rewards = [(f"{_label(c)} ({c.status.value})", c.id) for c in ckpts if c.kind is CheckpointKind.reward]
    everything = [(f"{_label(c)} · {c.kind.value} · {c.status.value}", c.id) for c in reversed(ckpts)]
    return ([("newest serving policy", 0)] + policies, [("none", 0)] + rewards, everything)


def _fingerprint(value: Any) -> str:
    return value.to_json() if isinstance(value, pd.DataFrame) else repr(value)


def _keep(value, choices: list) -> Any:
    return value if value in {v for _, v in choices} else (choices[0][1] if choices else None)


def build_training_section(ctx: UIContext) -> TrainingSection:
    with gr.Accordion("Start a training run", open=True):
        with gr.Row():
            algorithm = gr.Dropdown(runs_svc.ALGORITHMS, value="dpo", label="Algorithm", min_width=140)
            base = gr.Dropdown([("newest serving policy", 0)], value=0, label="Base checkpoint", min_width=200)
            reward = gr.Dropdown([("none", 0)], value=0, label="Reward model (ppo, rloo, grpo)", min_width=200)
            steps = gr.Textbox(label="Steps", placeholder="algorithm default", min_width=120)
        extra = gr.Textbox(
            label="Extra parameters (KEY=VALUE, one per line)", lines=3, placeholder="learning_rate=1e-4\nbeta=0.2"
        )
        with gr.Row():
            serve_new = gr.Checkbox(label="Serve the new checkpoint when the run succeeds", value=False)
            labels = gr.Radio(
                ["human", "machine", "both"],
                value="human",
                label="Labels (whose votes to train on)",
                info="both: machine labels only where no person voted",
                elem_id="run-labels",
            )
        with gr.Accordion("Parameters of this algorithm", open=False):
            help_html = gr.HTML(params_help("dpo"))
        start = gr.Button("Start run", variant="primary")
        start_status = gr.HTML()
    with gr.Accordion("Runs", open=True):
        with gr.Row():
            selected_run = gr.Dropdown([], value=None, label="Watch run", min_width=200, scale=3)
            cancel = gr.Button("Cancel run", variant="stop", size="md", scale=1, min_width=120)
        detail = gr.HTML(elem_id="run-detail-box")
        with gr.Row():
            loss_plot = gr.LinePlot(
                None, x="step", y="value", color="series", title="Loss", height=260, min_width=300, elem_id="loss-plot"
            )
            reward_plot = gr.LinePlot(
                None,
                x="step",
                y="value",
                color="series",
                title="Reward, margins, KL",
                height=260,
                min_width=300,
                elem_id="reward-plot",
            )
        runs_table = gr.Dataframe(
            headers=RUN_HEADERS,
            interactive=False,
            wrap=True,
            label="Runs (newest first)",
            max_height=360,
            elem_id="runs-table",
            column_widths=RUN_WIDTHS,
        )
    with gr.Accordion("Checkpoints", open=True):
        with gr.Row():
            picked = gr.Dropdown([], value=None, label="Checkpoint", min_width=220, scale=3)
            serve_btn = gr.Button("Serve", size="md", scale=1, min_width=100)
            retire_btn = gr.Button("Retire", size="md", scale=1, min_width=100)
        force_retire = gr.Checkbox(label="Retire even the last serving policy", value=False)
        ckpt_status = gr.HTML()
        lineage = gr.HTML()
        ckpt_table = gr.Dataframe(
            headers=CKPT_HEADERS,
            interactive=False,
            wrap=True,
            max_height=360,
            column_widths=CKPT_WIDTHS,
            label="Registry (newest first); parent = the checkpoint it was trained from",
            elem_id="checkpoints-table",
        )

    def lineage_html(checkpoint_id: int | None) -> str:
        if not checkpoint_id:
            return ""
        with ctx.session() as session:
            chain = ckpt_svc.lineage(session=session, checkpoint_id=int(checkpoint_id))
        return message("Lineage: " + " ← ".join(f"{_label(c)} ({c.status.value})" for c in chain))

    seen = gr.State({})

    def refresh(run_id, base_id, reward_id, ckpt_id, last: dict, request: gr.Request):
        require(ctx, request, Role.engineer)
        ckpts, runs = _checkpoints(ctx), _runs(ctx)
        by_id = {c.id: c for c in ckpts}
        run_choices = [(f"#{r.id} {r.algorithm.value} · {r.status.value}", r.id) for r in runs]
        run_id = _keep(run_id, run_choices)
        run = next((r for r in runs if r.id == run_id), None)
        entries = []
        if run is not None:
            with ctx.session() as session:
                entries = runs_svc.run_log(session=session, run_id=run.id)
        loss, rewards = curves(entries)
        base_choices, reward_choices, all_choices = _choices(ckpts)
        ckpt_id = _keep(ckpt_id, all_choices)
        fresh = {
            "run": (run_choices, run_id),
            "detail": run_detail(run, by_id),
            "loss": loss,
            "rewards": rewards,
            "runs": run_rows(runs, by_id),
            "base": (base_choices, _keep(base_id, base_choices)),
            "reward": (reward_choices, _keep(reward_id, reward_choices)),
            "picked": (all_choices, ckpt_id),
            "ckpts": checkpoint_rows(ckpts),
            "lineage": lineage_html(ckpt_id),
        }
        # Only what changed goes to the page: a re-sent table or dropdown loses its scroll position
        # or closes under the engineer's pointer.
        marks = {key: _fingerprint(value) for key, value in fresh.items()}
        out = []
        for key, value in fresh.items():
            if last.get(key) == marks[key]:
                out.append(gr.skip())
            elif key in ("run", "base", "reward", "picked"):
                out.append(gr.Dropdown(choices=value[0], value=value[1]))
            else:
                out.append(value)
        return (*out, marks)

    refresh_inputs = [selected_run, base, reward, picked, seen]
    refresh_outputs = [
        selected_run,
        detail,
        loss_plot,
        reward_plot,
        runs_table,
        base,
        reward,
        picked,
        ckpt_table,
        lineage,
        seen,
    ]

    def start_run(algo, base_id, reward_id, n_steps, extra_text, serve_new, labels_from, request: gr.Request):
        user = require(ctx, request, Role.engineer)
        try:
            params = parse_params(n_steps, extra_text)
            with ctx.session() as session:
                run = submit_run(
                    session=session,
                    queue=ctx.jobs,
                    algorithm=algo,
                    base_checkpoint_id=base_id or None,
                    reward_checkpoint_id=reward_id or None,
                    params=params,
                    serve_on_success=bool(serve_new),
                    labels=labels_from or "human",
                    created_by=user.id,
                )
        except RLHFError as exc:
            return gr.skip(), error_message(exc)
        snapshot = Snapshot.of(run)
        votes = snapshot.vote_count if snapshot else 0  # frozen now; the worker builds the rows
        note = f"Run #{run.id} ({run.algorithm.value}) queued" + (f" on {votes} votes." if votes else ".")
        return gr.Dropdown(choices=[(f"#{run.id} {run.algorithm.value} · queued", run.id)], value=run.id), message(
            note, "ok"
        )

    def cancel_run(run_id, request: gr.Request):
        require(ctx, request, Role.engineer)
        if not run_id:
            return message("Pick a run first.", "warn")
        try:
            with ctx.session() as session:
                run = runs_svc.cancel_run(session=session, run_id=int(run_id))
        except RLHFError as exc:
            return error_message(exc)
        state = "cancelled" if run.status.value == "cancelled" else "asked to stop"
        return message(f"Run #{run.id} {state}.", "ok")

    def change_checkpoint(action: str):
        def act(checkpoint_id, force: bool, request: gr.Request):
            require(ctx, request, Role.engineer)
            if not checkpoint_id:
                return message("Pick a checkpoint first.", "warn")
            merge = None
            try:
                with ctx.session() as session:
                    if action == "serve":
                        ckpt, merge = serve(
                            session=session, queue=ctx.jobs, settings=ctx.settings, checkpoint_id=int(checkpoint_id)
                        )
                    else:
                        ckpt = ckpt_svc.retire_checkpoint(
                            session=session, checkpoint_id=int(checkpoint_id), force=bool(force)
                        )
            except RLHFError as exc:
                return error_message(exc)
            note = (
                f" Merge job #{merge.id} is making its copy for the inference engine; it joins arena battles "
                "when that is done."
                if merge is not None
                else ""
            )
            return message(f"{_label(ckpt)} is now {ckpt.status.value}.{note}", "ok")

        return act

    def show_run(run_id, request: gr.Request):
        require(ctx, request, Role.engineer)
        ckpts = _checkpoints(ctx)
        with ctx.session() as session:
            run = session.get(TrainingRun, int(run_id)) if run_id else None
            entries = runs_svc.run_log(session=session, run_id=run.id) if run else []
        return (run_detail(run, {c.id: c for c in ckpts}), *curves(entries))

    def show_lineage(checkpoint_id, request: gr.Request):
        require(ctx, request, Role.engineer)
        return lineage_html(checkpoint_id)

    def describe_algorithm(algo, request: gr.Request):
        require(ctx, request, Role.engineer)
        return params_help(algo)

    private = {"api_visibility": "private"}
    start.click(
        start_run, [algorithm, base, reward, steps, extra, serve_new, labels], [selected_run, start_status], **private
    ).then(refresh, refresh_inputs, refresh_outputs, show_progress="hidden", **private)
    cancel.click(cancel_run, [selected_run], [start_status], **private).then(
        refresh, refresh_inputs, refresh_outputs, show_progress="hidden", **private
    )
    for button, action in ((serve_btn, "serve"), (retire_btn, "retire")):
        button.click(change_checkpoint(action), [picked, force_retire], [ckpt_status], **private).then(
            refresh, refresh_inputs, refresh_outputs, show_progress="hidden", **private
        )
    selected_run.input(show_run, [selected_run], [detail, loss_plot, reward_plot], **private)
    picked.input(show_lineage, [picked], [lineage], **private)
    algorithm.input(describe_algorithm, [algorithm], [help_html], **private)
    return TrainingSection(refresh_inputs=refresh_inputs, refresh_outputs=refresh_outputs, refresh=refresh)

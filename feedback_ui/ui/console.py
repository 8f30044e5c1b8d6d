"""The Console tab (engineers and admins): counts, data in and out, training, checkpoints, users.

Shown only to engineers and admins, and every handler checks the role again. While the
tab is open a timer refreshes the generation job's line, the runs and the registry every
:data:`REFRESH_S` seconds; it stops when the engineer switches to another tab. The counts
ride on the same tick but are recounted at most every :data:`COUNTS_MAX_AGE_S` seconds per
process, for all open Console tabs together (:class:`rlhf.services.stats.SharedCounts`).

Sections that grew big live beside this module: training and checkpoints in
:mod:`feedback_ui.ui.console_runs`, users in :mod:`feedback_ui.ui.console_users`.
"""

import html
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from feedback_ui.api_data import UPLOAD_LIMIT
from feedback_ui.ui.access import UIContext, lookup_user, require, role_allows
from feedback_ui.ui.console_arena import build_arena_section
from feedback_ui.ui.console_judges import build_judges_section
from feedback_ui.ui.console_labels import build_labels_section
from feedback_ui.ui.console_quality import build_quality_section
from feedback_ui.ui.console_runs import build_training_section
from feedback_ui.ui.console_users import build_users_section
from feedback_ui.ui.render import error_message, message, optional_int, render_markdown
from rlhf.errors import InvalidInput, RLHFError
from rlhf.jobs.submit import submit_generation
from rlhf.models import Role
from rlhf.services import app_settings, dataset, generation_jobs, prompts, stats
from rlhf.services.app_settings import MAX_VALUE_CHARS

REFRESH_S = 2.0
# The counts read every vote (about 0.2 s at a million votes); the job line and the runs read a
# few rows. Counted on every tick of every open tab, five engineers watching spent a third of
# the wall time counting; shared per process and at most 5 s old, the console counts once per
# 5-6 s per web process however many watch (4 %), and a new vote shows within about 7 s.
COUNTS_MAX_AGE_S = 5.0
PROMPT_TYPES = [".jsonl", ".json", ".ndjson", ".csv", ".parquet", ".pq"]


@dataclass
class ConsoleTab:
    tab: gr.Tab
    timer: gr.Timer
    admin_only: gr.Accordion
    # Engineers land on the Console when the page loads, which is no tab ``select``: the page's
    # load event runs ``landed`` instead (a no-op for raters).
    landed: Callable[..., tuple]
    landed_inputs: list
    landed_outputs: list


def stats_html(counts: dict) -> str:
    def group(title: str, values) -> str:
        if isinstance(values, dict):
            total = sum(values.values())
            detail = ", ".join(f"{html.escape(str(k))} {v}" for k, v in sorted(values.items()))
            body = f"<strong>{total}</strong>" + (f"<small>{detail}</small>" if detail else "")
        else:
            body = f"<strong>{values}</strong>"
        return f'<div class="rl-stat"><span>{title}</span>{body}</div>'

    cells = [
        group("Prompts", counts["prompts"]),
        group("Responses", counts["responses"]),
        group("Comparisons", counts["comparisons"]),
        *([group("Rankings", counts["rankings"])] if counts.get("rankings") else []),
        group("Votes", counts["votes_by_choice"]),
        group("Checkpoints", counts["checkpoints"]),
        group("Runs", counts["runs"]),
        group("Generation jobs", counts["generation_jobs"]),
        group("Users", counts["users"]),
    ]
    style = (
        "<style>.rl-stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.5rem}"
        ".rl-stat{border:1px solid var(--border-color-primary);border-radius:8px;padding:.45rem .7rem;"
        "display:flex;flex-direction:column}.rl-stat span{font-size:.8rem;color:var(--body-text-color-subdued)}"
        ".rl-stat strong{font-size:1.2rem}.rl-stat small{color:var(--body-text-color-subdued)}</style>"
    )
    return f'{style}<div class="rl-stats" id="console-stats">{"".join(cells)}</div>'


def _job_html(ctx: UIContext, job_id: int | None) -> str:
    if not job_id:
        return ""
    with ctx.session() as session:
        job = generation_jobs.get_generation_job(session=session, job_id=job_id)
    kind = {"succeeded": "ok", "failed": "error", "cancelled": "warn"}.get(job.status.value, "info")
    text = f"Generation job #{job.id}: {job.status.value}"
    if job.result:
        text += " · " + ", ".join(f"{k} {v}" for k, v in job.result.items() if isinstance(v, (int, float, str)))
    if job.error:
        text += f" · {job.error}"
    return message(text, kind)


def _export_file(ctx: UIContext, ties: str) -> tuple[Path, int]:
    """Write the preference dataset into a fresh private temp folder (Gradio serves files from the temp dir)."""
    folder = Path(tempfile.mkdtemp(prefix="rlhf-export-"))
    path = folder / f"preferences-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    with ctx.session() as session:
        count = dataset.export(session=session, path=path, fmt="jsonl", ties=ties)
    return path, count


def build_console_tab(ctx: UIContext) -> ConsoleTab:
    shared_counts = stats.SharedCounts(ctx.session, max_age_s=COUNTS_MAX_AGE_S)
    with gr.Tab("Console", id="console", visible=False) as tab:
        timer = gr.Timer(REFRESH_S, active=False)
        counts = gr.HTML()
        with gr.Accordion("Prompts and generation", open=True):
            with gr.Row():
                with gr.Column(min_width=300):
                    upload = gr.File(
                        label=f"Prompt file (JSONL, CSV or Parquet; up to 20 MiB, "
                        f"{prompts.MAX_PROMPT_CHARS:,} characters per prompt)",
                        file_types=PROMPT_TYPES,
                        type="filepath",
                        height=120,
                        elem_id="prompt-upload",
                    )
                    tags = gr.Textbox(label="Tags for every imported prompt (comma-separated)")
                    import_btn = gr.Button("Import prompts", variant="primary")
                    import_status = gr.HTML()
                with gr.Column(min_width=300):
                    with gr.Row():
                        # Textboxes, not Numbers: blank (the default) must stay blank, not become 0.
                        limit = gr.Textbox(label="Prompts", placeholder="all", min_width=120)
                        per_ckpt = gr.Textbox(label="Samples per checkpoint", placeholder="auto", min_width=120)
                        target = gr.Number(
                            label="Votes per comparison",
                            value=ctx.settings.votes_per_comparison,
                            precision=0,
                            minimum=1,
                            maximum=100,
                            min_width=120,
                        )
                    with gr.Row():
                        select = gr.Dropdown(
                            [("random", "random"), ("uncertain: smallest reward margin first", "uncertain")],
                            value="random",
                            label="Pair selection",
                            min_width=200,
                            elem_id="pair-selection",
                        )
                        reward_model = gr.Textbox(label="Reward model (uncertain)", placeholder="newest", min_width=120)
                    with gr.Row():
                        gen_tag = gr.Textbox(label="Only prompts tagged", min_width=120)
                        max_tokens = gr.Number(
                            label="Max new tokens", value=64, precision=0, minimum=1, maximum=4096, min_width=120
                        )
                        temperature = gr.Number(label="Temperature", value=1.0, minimum=0.01, maximum=5, min_width=120)
                    # Every pair asks already where the deployment does (RLHF_ASK_STRENGTH).
                    ask_strength = gr.Checkbox(
                        label="Ask raters how much better (slightly / clearly / much) on these pairs",
                        value=ctx.settings.ask_strength,
                        interactive=not ctx.settings.ask_strength,
                        elem_id="generation-ask-strength",
                    )
                    # A ranking: K answers per prompt ordered in one judgement, instead of pairs.
                    rank = gr.Dropdown(
                        [("pairs", 0)] + [(f"rank {k} answers per prompt", k) for k in range(3, 7)],
                        value=0,
                        label="Raters judge",
                        min_width=200,
                        elem_id="generation-rank",
                    )
                    gen_btn = gr.Button("Start generation", variant="primary")
                    # What the button said (an error stays until the next click); the timer writes
                    # the job's progress beside it, never over it.
                    gen_status = gr.HTML(elem_id="generation-status")
                    job_line = gr.HTML(elem_id="generation-job")
                    job_id = gr.State(None)
        training = build_training_section(ctx)
        build_quality_section(ctx)
        build_labels_section(ctx)
        build_judges_section(ctx)
        build_arena_section(ctx)
        with gr.Accordion("Export and guidelines", open=False):
            with gr.Row():
                ties = gr.Dropdown(
                    [("drop ties", "drop"), ("keep ties", "keep")], value="drop", label="Ties", min_width=140, scale=1
                )
                export_btn = gr.Button("Export preferences (JSONL)", size="md", scale=2, min_width=200)
            export_file = gr.File(label="Download", visible=False, interactive=False, elem_id="export-file")
            export_dir = gr.State(None)
            export_status = gr.HTML()
            guidelines = gr.Textbox(label="Rater guidelines (Markdown)", lines=8, max_length=MAX_VALUE_CHARS)
            with gr.Row():
                save_guidelines = gr.Button("Save guidelines", variant="primary", size="md")
            guidelines_status = gr.HTML()
            preview = gr.HTML()
        admin_only = build_users_section(ctx)

    def refresh_counts(job: int | None, request: gr.Request):
        require(ctx, request, Role.engineer)
        return stats_html(shared_counts.get()), _job_html(ctx, job)

    def opened(draft: str, request: gr.Request):
        """Start the live refresh and load the guidelines, unless the editor holds a draft."""
        require(ctx, request, Role.engineer)
        if draft:
            return gr.Timer(active=True), gr.skip(), gr.skip()
        with ctx.session() as session:
            text = app_settings.get_text(session=session, key=app_settings.GUIDELINES)
        return gr.Timer(active=True), text, _preview(text)

    def import_prompts(path: str | None, tag_text: str, request: gr.Request):
        require(ctx, request, Role.engineer)
        if not path:
            return message("Choose a file first.", "warn"), gr.skip()
        try:
            if os.path.getsize(path) > UPLOAD_LIMIT:
                raise InvalidInput(f"{Path(path).name}: larger than {UPLOAD_LIMIT // (1024 * 1024)} MiB")
            tag_list = [t.strip() for t in (tag_text or "").split(",") if t.strip()]
            with ctx.session() as session:
                # All or nothing: a bad line raises inside the unit of work, which is then rolled back.
                result = prompts.import_file(
                    session=session, path=Path(path).name, data=Path(path).read_bytes(), tags=tag_list
                )
        except RLHFError as exc:
            # The message names the file and its bad lines; the file stays picked (as for gold), so
            # the engineer sees which one was refused.
            return error_message(exc), gr.skip()
        shared_counts.invalidate()  # the engineer sees their prompts counted at once
        note = f"Imported {result.created} prompts" + (
            f" ({result.skipped} already present)." if result.skipped else "."
        )
        return message(note, "ok"), None

    def start_generation(
        n_prompts, per_checkpoint, votes, tag, tokens, temp, strategy, reward, asks, ranked, request: gr.Request
    ):
        require(ctx, request, Role.engineer)
        try:
            tokens = optional_int(tokens, "max new tokens") or 64
            if temp in (None, ""):
                raise InvalidInput("give a temperature (above 0, at most 5)")
            with ctx.session() as session:
                job = submit_generation(
                    session=session,
                    queue=ctx.jobs,
                    per_checkpoint=optional_int(per_checkpoint, "samples per checkpoint"),
                    limit=optional_int(n_prompts, "prompts"),
                    tag=(tag or "").strip() or None,
                    target_votes=(optional_int(votes, "votes per comparison") or ctx.settings.votes_per_comparison),
                    strategy=strategy or "random",
                    # The field is ignored for random pairs, so a leftover name is harmless.
                    reward_checkpoint_id=((reward or "").strip() or None if strategy == "uncertain" else None),
                    sampling={"max_new_tokens": tokens, "temperature": float(temp)},
                    # A ranking asks no strength: the deployment's setting (the box ticked for every
                    # job) does not apply to it, while a box ticked for this job is refused with it.
                    ask_strength=bool(asks) and not (ranked and ctx.settings.ask_strength),
                    rank=int(ranked) if ranked else None,
                )
        except RLHFError as exc:
            return error_message(exc), gr.skip()
        return message(f"Generation job #{job.id} queued.", "ok"), job.id

    def export(ties_mode: str, previous: str | None, request: gr.Request):
        require(ctx, request, Role.engineer)
        if previous and Path(previous).name.startswith("rlhf-export-"):
            # Gradio copied that file into its cache when it was handed out; the original can go.
            shutil.rmtree(previous, ignore_errors=True)
        try:
            path, n = _export_file(ctx, ties_mode)
        except RLHFError as exc:
            return gr.File(visible=False), error_message(exc), None
        return (
            gr.File(value=str(path), visible=True),
            message(f"{n} preference rows exported.", "ok"),
            str(path.parent),
        )

    def save(text: str, request: gr.Request):
        require(ctx, request, Role.engineer)
        try:
            with ctx.session() as session:
                app_settings.set_guidelines(session=session, text=text or "")
        except RLHFError as exc:
            return error_message(exc), gr.skip()
        return message("Guidelines saved; raters see them on their next page load.", "ok"), _preview(text)

    private = {"api_visibility": "private"}
    tab.select(opened, [guidelines], [timer, guidelines, preview], **private).then(
        refresh_counts, [job_id], [counts, job_line], **private
    ).then(training.refresh, training.refresh_inputs, training.refresh_outputs, **private)
    timer.tick(refresh_counts, [job_id], [counts, job_line], show_progress="hidden", **private)
    timer.tick(training.refresh, training.refresh_inputs, training.refresh_outputs, show_progress="hidden", **private)
    import_btn.click(import_prompts, [upload, tags], [import_status, upload], **private).then(
        refresh_counts, [job_id], [counts, job_line], show_progress="hidden", **private
    )
    gen_btn.click(
        start_generation,
        [limit, per_ckpt, target, gen_tag, max_tokens, temperature, select, reward_model, ask_strength, rank],
        [gen_status, job_id],
        **private,
    )
    export_btn.click(export, [ties, export_dir], [export_file, export_status, export_dir], **private)
    save_guidelines.click(save, [guidelines], [guidelines_status, preview], **private)

    def landed(draft: str, job: int | None, run_id, base_id, reward_id, ckpt_id, last: dict, request: gr.Request):
        if not role_allows(lookup_user(ctx, request), Role.engineer):
            return tuple(gr.skip() for _ in landed_outputs)
        return (
            *opened(draft, request),
            *refresh_counts(job, request),
            *training.refresh(run_id, base_id, reward_id, ckpt_id, last, request),
        )

    landed_inputs = [guidelines, job_id, *training.refresh_inputs]
    landed_outputs = [timer, guidelines, preview, counts, job_line, *training.refresh_outputs]
    return ConsoleTab(
        tab=tab,
        timer=timer,
        admin_only=admin_only,
        landed=landed,
        landed_inputs=landed_inputs,
        landed_outputs=landed_outputs,
    )


def _preview(text: str | None) -> str:
    if not (text or "").strip():
        return message("No guidelines yet; raters see a short default.")
    return f'<div class="rl-md rl-prompt">{render_markdown(text)}</div>'

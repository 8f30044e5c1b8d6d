"""Console section: how good the votes are, gold comparisons, and leaving a rater's votes out.

Agreement is measured on comparisons with more than one vote (ask for k votes per pair
when generating); gold accuracy on the gold pairs mixed into every queue. Every handler
checks the engineer role again on the server.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
import pandas as pd

from feedback_ui.api_data import UPLOAD_LIMIT
from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, message
from rlhf.errors import InvalidInput, RLHFError
from rlhf.models import Choice, Role
from rlhf.services import gold, quality
from rlhf.services import users as users_svc
from rlhf.services.prompts import MAX_PROMPT_CHARS

RATER_HEADERS = ["Rater", "Votes", "Agreement", "Vote pairs", "Gold accuracy", "Gold answered", "Flagged", "Excluded"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def summary_html(q: quality.Quality, settings) -> str:
    alpha = "–" if q.krippendorff_alpha is None else f"{q.krippendorff_alpha:.2f}"
    counts = ", ".join(f"{n} with {k}" for k, n in sorted(q.vote_counts.items())) or "none"
    parts = [
        f"Agreement <strong>{_pct(q.agreement)}</strong> over {q.pairs} vote pairs on "
        f"{q.overlap_comparisons} shared comparisons; Krippendorff's alpha <strong>{alpha}</strong>.",
        f"Votes per comparison: {html.escape(counts)}.",
        f"Gold comparisons: <strong>{q.gold_comparisons}</strong> (shown at {settings.gold_rate:.0%} of "
        f"hand-outs); raters under {settings.gold_min_accuracy:.0%} gold accuracy after "
        f"{settings.gold_min_answered} answers are flagged: <strong>{len(q.flagged)}</strong>.",
    ]
    if q.unreachable:
        parts.append(
            f'<span class="rl-warn">{q.unreachable} open comparisons ask for more votes than there are '
            "active users: they cannot reach their target.</span>"
        )
    return '<div id="quality-summary">' + "<br>".join(parts) + "</div>"


def build_quality_section(ctx: UIContext) -> gr.Accordion:
    with gr.Accordion("Rater quality and gold", open=False) as section:
        summary = gr.HTML()
        table = gr.Dataframe(headers=RATER_HEADERS, interactive=False, label="Raters", elem_id="quality-table")
        with gr.Row():
            rater = gr.Dropdown([], label="Rater", min_width=200, scale=3)
            exclude = gr.Button("Leave their votes out", variant="stop", size="md", scale=1, min_width=160)
            include = gr.Button("Use their votes", size="md", scale=1, min_width=140)
        with gr.Row():
            with gr.Column(min_width=300):
                upload = gr.File(
                    label="Gold comparisons (JSONL: prompt, a, b, answer — or prompt, chosen, rejected; "
                    f"up to {MAX_PROMPT_CHARS:,} characters per text)",
                    file_types=[".jsonl"],
                    type="filepath",
                    height=110,
                    elem_id="gold-upload",
                )
                import_btn = gr.Button("Import gold", variant="primary")
            with gr.Column(min_width=300):
                with gr.Row():
                    comparison = gr.Textbox(label="Comparison id", min_width=120)
                    answer = gr.Dropdown(
                        [
                            ("A (response_a) is right", "a"),
                            ("B (response_b) is right", "b"),
                            ("Tie", "tie"),
                            ("Both bad", "both_bad"),
                        ],
                        value="a",
                        label="Known answer",
                        min_width=160,
                    )
                with gr.Row():
                    mark = gr.Button("Mark as gold", variant="primary", size="md")
                    unmark = gr.Button("Make regular again", size="md")
        status = gr.HTML()

    def listing(request: gr.Request):
        require(ctx, request, Role.engineer)
        with ctx.session() as session:
            q = quality.measure(session=session)
            users = users_svc.list_users(session=session)
        rows = [
            [
                r.name,
                r.votes,
                _pct(r.agreement),
                r.pairs,
                _pct(r.gold_accuracy),
                r.gold_answered,
                "yes" if r.flagged else "",
                "yes" if r.excluded else "",
            ]
            for r in q.raters
        ]
        choices = [(f"{u.name}{' (excluded)' if u.excluded else ''}", u.id) for u in users]
        return summary_html(q, ctx.settings), pd.DataFrame(rows, columns=RATER_HEADERS), gr.Dropdown(choices=choices)

    def set_excluded(excluded: bool):
        def act(user_id, request: gr.Request):
            require(ctx, request, Role.engineer)
            if not user_id:
                return message("Pick a rater first.", "warn")
            with ctx.session() as session:
                user = users_svc.set_excluded(session=session, user_id=int(user_id), excluded=excluded)
            state = "left out of exports and new runs" if excluded else "used again"
            return message(f"{user.name}'s votes are {state}.", "ok")

        return act

    def import_gold(path, request: gr.Request):
        require(ctx, request, Role.engineer)
        if not path:
            return message("Choose a JSONL file first.", "warn"), gr.skip()
        file = Path(path)
        try:
            if file.stat().st_size > UPLOAD_LIMIT:
                raise InvalidInput(f"{file.name}: larger than {UPLOAD_LIMIT // 2**20} MiB")
            with ctx.session() as session:
                ids = gold.import_gold(session=session, path=file)
        except RLHFError as exc:
            return error_message(exc), gr.skip()
        return message(f"Imported {len(ids)} gold comparisons.", "ok"), None

    def mark_gold(answer_value: str | None):
        def act(comparison_id, chosen, request: gr.Request):
            require(ctx, request, Role.engineer)
            try:
                cid = int(str(comparison_id or "").strip())
            except ValueError:
                return message("Give a comparison id (a number).", "warn")
            value = chosen if answer_value is None else answer_value
            try:
                with ctx.session() as session:
                    gold.mark_gold(session=session, comparison_id=cid, answer=None if value == "" else value)
            except RLHFError as exc:
                return error_message(exc)
            if value == "":
                return message(f"Comparison {cid} is a regular comparison again.", "ok")
            return message(f"Comparison {cid} is gold; answer {Choice(value).value}.", "ok")

        return act

    private = {"api_visibility": "private"}
    outputs = [summary, table, rater]
    section.expand(listing, None, outputs, **private)
    exclude.click(set_excluded(True), [rater], [status], **private).then(listing, None, outputs, **private)
    include.click(set_excluded(False), [rater], [status], **private).then(listing, None, outputs, **private)
    import_btn.click(import_gold, [upload], [status, upload], **private).then(listing, None, outputs, **private)
    mark.click(mark_gold(None), [comparison, answer], [status], **private).then(listing, None, outputs, **private)
    unmark.click(mark_gold(""), [comparison, answer], [status], **private).then(listing, None, outputs, **private)
    return section

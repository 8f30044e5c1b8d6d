"""The console's arena section: battle counts, the demonstrations raters wrote, and promoting arena
prompts into the pool generation jobs, online RL and the held-out split draw from."""

import html

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, fmt_time, message
from rlhf.errors import InvalidInput, RLHFError
from rlhf.models import Comparison, Role
from rlhf.services import arena, demonstrations
from rlhf.services.users import list_users

DEMO_HEADERS = ["id", "rater", "comparison", "prompt id", "conversation", "answer", "written"]


def _counts_html(counts: dict) -> str:
    return (
        '<div id="arena-counts">Arena: <strong>{battles}</strong> battles ({voted} voted, {open} open, '
        "{expired} expired) · <strong>{votes}</strong> votes · <strong>{demonstrations}</strong> "
        "demonstrations · {written_preferences} written preferences · {promoted_prompts} prompts "
        "promoted</div>"
    ).format(**counts)


def _sitting_out_html(skipped) -> str:
    """Serving checkpoints the arena leaves out now, and why (prompt tuning, a merge not done yet)."""
    if not skipped:
        return ""
    items = "".join(
        f"<li>checkpoint {c.id} ({html.escape(c.name)}): {html.escape(reason)}</li>" for c, reason in skipped
    )
    return f'<div id="arena-sitting-out">Serving, not in battles now:<ul>{items}</ul></div>'


def build_arena_section(ctx: UIContext) -> gr.Accordion:
    with gr.Accordion("Arena and demonstrations", open=False) as section:
        counts = gr.HTML()
        table = gr.Dataframe(
            headers=DEMO_HEADERS,
            interactive=False,
            label="Demonstrations (newest first)",
            elem_id="demonstrations-table",
            wrap=True,
        )
        with gr.Row():
            prompt_ids = gr.Textbox(
                label="Arena prompt ids to promote (comma-separated)", scale=3, elem_id="promote-ids"
            )
            promote = gr.Button("Promote into the prompt pool", scale=1, min_width=200)
        status = gr.HTML()

    def listing(request: gr.Request):
        require(ctx, request, Role.engineer)
        with ctx.session() as session:
            data = arena.arena_counts(session=session)
            _, skipped = arena.arena_checkpoints(session=session, settings=ctx.settings)
            names = {u.id: u.name for u in list_users(session=session)}
            demos = demonstrations.list_demonstrations(session=session, limit=200)
            prompt_of = {
                d.comparison_id: session.get(Comparison, d.comparison_id).prompt_id for d in demos if d.comparison_id
            }
            rows = [
                [
                    d.id,
                    names.get(d.rater_id, d.rater_id),
                    d.comparison_id or "",
                    prompt_of.get(d.comparison_id, ""),
                    " / ".join(f"{m['role']}: {m['content'][:80]}" for m in d.messages),
                    d.text[:300],
                    fmt_time(d.created_at),
                ]
                for d in demos
            ]
        return _counts_html(data) + _sitting_out_html(skipped), rows

    def do_promote(text: str, request: gr.Request):
        require(ctx, request, Role.engineer)
        try:
            ids = [int(x) for x in (text or "").replace(" ", "").split(",") if x]
            if not ids:
                raise InvalidInput("give the ids of the prompts to promote")
            with ctx.session() as session:
                n = arena.promote_prompts(session=session, prompt_ids=ids)
        except ValueError:
            return error_message(InvalidInput("prompt ids are whole numbers, separated by commas")), *listing(request)
        except RLHFError as exc:
            return error_message(exc), *listing(request)
        return message(f"{n} prompts are in the pool now.", "ok"), *listing(request)

    section.expand(listing, None, [counts, table], api_visibility="private", show_progress="hidden")
    promote.click(do_promote, [prompt_ids], [status, counts, table], api_visibility="private")
    return section

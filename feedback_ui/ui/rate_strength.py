"""How much better: the Rate tab's strength controls, on the pairs that ask (every pair with
``Settings.ask_strength``, else those of a generation job that asked: ``rlhf generate --ask-strength``).

The question costs a rater who ignores it nothing. Shift with A's or B's key votes "much
better" in the same keystroke: the key presses a "much better" twin of the vote button
(:func:`much_buttons`, drawn for screen readers and keyboard focus only, pressed by
``static/rate.js``), so the vote takes the same handler, guard and idempotency key as a
plain one. After an A or B vote, three small buttons beside Undo set (or change) the
strength of the vote just cast, within the undo window (:func:`rlhf.services.rating.set_strength`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, message
from feedback_ui.ui.vote_buttons import CHOICE_LABELS, VOTE_BUTTONS, VoteButton
from rlhf.errors import RLHFError
from rlhf.models import Choice, Strength
from rlhf.services import rating

STRENGTH_GUIDE_HTML = (
    '<div class="rl-md rl-strength-guide"><p><strong>How much better</strong> (optional, after an A or B '
    "vote; <kbd>Shift</kbd> with its key votes <em>much better</em> at once): <em>slightly</em>, a small but "
    "real difference; <em>clearly</em>, one is plainly better; <em>much</em>, one is far better, or the other "
    "is wrong or unusable.</p></div>"
)


def strength_text(strength: int | None) -> str:
    """ ", much better" after a vote's label, or nothing."""
    return f", {Strength(strength).label}" if strength else ""


def much_buttons() -> list[tuple[gr.Button, VoteButton]]:
    """The "A/B is much better" twins, made inside the vote row (see rlhf.css for how they hide)."""
    return [
        (
            gr.Button(
                b.much_label, elem_id=b.much, variant=b.variant, elem_classes=["rl-much"], min_width=0, visible=False
            ),
            b,
        )
        for b in VOTE_BUTTONS
        if b.much
    ]


def _can_mark(last: dict | None) -> bool:
    """The last vote was A or B, on a pair that asked how much better."""
    return bool(last) and last.get("asks_strength", False) and Choice(last["choice"]) in (Choice.a, Choice.b)


@dataclass(frozen=True)
class StrengthRow:
    """The buttons that mark the last vote slightly, clearly or much better; the one it holds is highlighted."""

    row: gr.Row
    buttons: tuple[gr.Button, ...]  # in Strength order

    @classmethod
    def build(cls) -> StrengthRow:
        with gr.Row(visible=False, elem_id="rate-strength", elem_classes="rl-strength-row") as row:
            gr.HTML('<span class="rl-strength-q">Last vote:</span>')
            buttons = tuple(
                gr.Button(s.label.capitalize(), size="sm", elem_id=f"rate-strength-{s.value}", min_width=0)
                for s in Strength
            )
        return cls(row, buttons)

    @property
    def components(self) -> list:
        return [self.row, *self.buttons]

    def shown(self, last: dict | None) -> dict:
        """Visible after an A or B vote (``last``: the vote Undo would take back), hidden otherwise."""
        held = (last or {}).get("strength")
        return {
            self.row: gr.Row(visible=_can_mark(last)),
            **{
                b: gr.Button(variant="primary" if held == s.value else "secondary")
                for s, b in zip(Strength, self.buttons)
            },
        }

    def wire(self, ctx: UIContext, *, status: gr.HTML, last_vote: gr.State) -> None:
        def make_mark(level: Strength):
            def mark(last: dict | None, request: gr.Request):
                user = require(ctx, request)
                if not _can_mark(last):
                    return {status: message("No A or B vote to mark.", "warn"), **self.shown(None)}
                assert last is not None
                try:
                    with ctx.session() as session:
                        rating.set_strength(
                            session=session,
                            rater=user,
                            vote_id=last["id"],
                            strength=level.value,
                            window_s=ctx.settings.undo_window_s,
                        )
                except RLHFError as exc:  # too late, or a run holds the vote: the buttons can do no more
                    return {status: error_message(exc), **self.shown(None)}
                marked = {**last, "strength": level.value}
                label = CHOICE_LABELS[Choice(last["choice"])]
                note = message(f"Last vote ({label}) marked {level.label}.", "ok")
                return {status: note, last_vote: marked, **self.shown(marked)}

            return mark

        for level, button in zip(Strength, self.buttons):
            button.click(
                make_mark(level),
                inputs=[last_vote],
                outputs=[status, last_vote, *self.components],
                trigger_mode="once",
                api_visibility="private",
                show_progress="hidden",
            )

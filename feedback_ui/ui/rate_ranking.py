"""Rankings on the Rate tab: the K answers of one prompt, ordered by the rater in one judgement.

The hand-out (:func:`rlhf.services.rating.next_item`) may give the tab a ranking instead of a
pair; its answers come in the order the service shuffled and keeps for this rater, numbered
1 to K on screen (the service counts from 0). The rater writes the order best first in the
order box, one number per answer: a space (or nothing, or a comma, or ``>``) starts the next
place and ``=`` puts answers in the same place, so ``3 1=4 2`` says 3 is best, 1 and 4 share
second place and 2 is last. Typing a number anywhere on the page starts the order; Enter
submits it. On a phone, each answer has a "next place" and a "same place" button that write
the same order (``static/rate.js`` draws the order as it grows, on the answers and above the
box). The order is parsed here, in the rater's numbers (:func:`parse_typed_order`), before
anything is stored: a wrong one is a message on the page. Undo takes the whole order back
within the undo window and hands the ranking back in the same order; a ranking has no strength.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from feedback_ui.ui.access import UIContext
from feedback_ui.ui.render import RANKING_IDS, message, prompt_html, render_markdown
from rlhf.errors import InvalidInput
from rlhf.models import User
from rlhf.services import rankings, rating

# The separators a typed order may use between places (besides none at all); "=" joins a place.
PLACE_SEPARATORS = " \t,>"
EXAMPLE = "3 1=4 2"

RANKING_GUIDE_HTML = (
    '<div class="rl-rank-guide rl-md" id="rank-guide"><p><strong>Order the answers, best first.</strong> '
    f"Type their numbers (<kbd>{EXAMPLE}</kbd>) and press <kbd>Enter</kbd>, or tap <em>Next place</em> "
    "on each answer in turn. <kbd>=</kbd> puts answers in the same place (a tie): "
    f"<kbd>{EXAMPLE}</kbd> means 3 is best, 1 and 4 share second place, 2 is last. "
    "Place every answer.</p></div>"
)

_BUILD_HTML = (
    '<div class="rl-rank-build">'
    '<div class="rl-rank-preview" id="rank-preview" role="status" aria-live="polite">Nothing placed yet.</div>'
    '<div class="rl-rank-tools">'
    '<button type="button" class="rl-rank-tool" data-rl-rank="back" id="rank-back">Remove last</button>'
    '<button type="button" class="rl-rank-tool" data-rl-rank="clear" id="rank-clear">Clear order</button>'
    "</div></div>"
)


def parse_typed_order(text: str | None, answers: int) -> list[list[int]]:
    """The order a rater typed, as the service takes it: groups of answer indexes from 0, best first.

    ``text`` names answers by their numbers on screen (1 to ``answers``), one digit each, best
    first; a space, comma or ``>`` (or nothing) between two numbers starts the next place, ``=``
    puts them in the same place. Every answer must be placed once; the error names what is wrong
    in the rater's numbers. ``static/rate.js`` reads an order the same way to draw it as it is typed.
    """
    typed = (text or "").strip()
    numbers = f"1 to {answers}"
    if not typed:
        raise InvalidInput(
            f"No order yet: type the answer numbers best first ({EXAMPLE}), or tap Next place on each answer."
        )
    groups: list[list[int]] = []
    placed: set[int] = set()
    joining = False
    for char in typed:
        if char.isdigit():
            number = int(char)
            if not 1 <= number <= answers:
                raise InvalidInput(f"There is no answer {number}: the answers are numbered {numbers}.")
            if number in placed:
                raise InvalidInput(f"Answer {number} is placed twice in {typed!r}: place each answer once.")
            placed.add(number)
            if joining:
                groups[-1].append(number - 1)
            else:
                groups.append([number - 1])
            joining = False
        elif char == "=":
            if not groups or joining:
                raise InvalidInput(f"“=” goes between two answers that share a place, as in 1=4; not as in {typed!r}.")
            joining = True
        elif char in PLACE_SEPARATORS:
            if joining and char != " " and char != "\t":
                raise InvalidInput(f"“=” goes between two answers that share a place, as in 1=4; not as in {typed!r}.")
        else:
            raise InvalidInput(
                f"{char!r} is not an answer number: type the numbers {numbers} best first, "
                "with = between answers that share a place."
            )
    if joining:
        raise InvalidInput(f"“=” goes between two answers that share a place, as in 1=4; not as in {typed!r}.")
    missing = [str(n) for n in range(1, answers + 1) if n not in placed]
    if len(missing) == 1:
        raise InvalidInput(f"Place every answer: answer {missing[0]} is not placed yet.")
    if missing:
        raise InvalidInput(
            f"Place every answer: answers {', '.join(missing[:-1])} and {missing[-1]} are not placed yet."
        )
    return groups


def order_text(groups: list[list[int]]) -> str:
    """An order (indexes from 0) as the rater would type it, answers of a place in number order: ``3 1=4 2``."""
    return " ".join("=".join(str(i + 1) for i in sorted(group)) for group in groups)


def _answer_card(number: int, text: str) -> str:
    name = f"Answer {number}"
    return (
        f'<section class="rl-card rl-rank-card" data-rl-answer="{number}" aria-label="{name}">'
        f'<div class="rl-card-title"><span class="rl-rank-num" aria-hidden="true">{number}</span> {name}'
        '<span class="rl-rank-place"></span></div>'
        f'<div class="rl-card-body rl-md" tabindex="0">{render_markdown(text)}</div>'
        '<div class="rl-rank-taps">'
        f'<button type="button" class="rl-rank-tap" data-rl-rank="next" data-rl-answer="{number}" '
        f'aria-label="{name}: next place">Next place</button>'
        f'<button type="button" class="rl-rank-tap" data-rl-rank="same" data-rl-answer="{number}" '
        f'aria-label="{name}: same place as previous">Same place as previous</button>'
        "</div></section>"
    )


def answers_html(handout: rankings.RankingHandout, key: str) -> str:
    """The answers as cards numbered from 1, in the order handed out. ``key`` (the hand-out's own)
    makes every hand-out a new value, so the page redraws it even when undo hands the same one back."""
    cards = "".join(_answer_card(n, text) for n, text in enumerate(handout.answers, start=1))
    return (
        f'<div class="rl-rank-answers" data-rl-answers="{len(handout.answers)}" '
        f'data-rl-handout="{html.escape(key)}">{cards}</div>'
    )


def ranking_keys_hint_html() -> str:
    """The line under the order box that names the keys (hidden on small and touch screens)."""
    return (
        f'<div class="rl-keys-hint">Keyboard: type the numbers best first (<kbd>{EXAMPLE}</kbd>) · '
        "<kbd>=</kbd> same place · <kbd>Backspace</kbd> corrects · <kbd>Enter</kbd> submits</div>"
    )


def build_view() -> dict[str, Any]:
    """The ranking's part of the page (where the pair's is): prompt, guide line, answers. Keyed by
    the names :func:`view_values` and the Rate tab use."""
    with gr.Column(visible=False, elem_id=RANKING_IDS["view"]) as column:
        prompt = gr.HTML(elem_id="rank-prompt")
        gr.HTML(RANKING_GUIDE_HTML)
        answers = gr.HTML(elem_id=RANKING_IDS["answers"])
    return {"ranking": column, "rank_prompt": prompt, "rank_answers": answers}


def build_bar() -> dict[str, Any]:
    """The ranking's part of the choice bar (where the vote buttons are): the order being built,
    the order box and Submit order."""
    with gr.Column(visible=False, elem_id="rank-bar", elem_classes="rl-rank-bar") as bar:
        # Never an output: the page's script owns what this shows (see static/rate.js).
        gr.HTML(_BUILD_HTML)
        with gr.Row(elem_classes="rl-rank-order-row"):
            order = gr.Textbox(
                label="Your order, best first",
                placeholder=f"e.g. {EXAMPLE}",
                lines=1,
                max_lines=1,
                max_length=60,
                elem_id=RANKING_IDS["order"],
                scale=3,
            )
            submit = gr.Button("Submit order", variant="primary", elem_id=RANKING_IDS["submit"], scale=1, min_width=130)
    return {"order_bar": bar, "order": order, "rank_submit": submit}


def view_values(handout: rankings.RankingHandout | None, key: str = "") -> dict[str, Any]:
    """What the ranking's components show for this hand-out (or, with None, that none is shown)."""
    if handout is None:
        return {"ranking": gr.Column(visible=False), "order_bar": gr.Column(visible=False)}
    return {
        "ranking": gr.Column(visible=True),
        "order_bar": gr.Column(visible=True),
        "rank_prompt": prompt_html(handout.prompt),
        "rank_answers": answers_html(handout, key),
        "order": "",
    }


def submit_order(
    ctx: UIContext, user: User, current: dict, typed: str, why: str
) -> tuple[rankings.RankingResult, rating.Item | None]:
    """Commits: stores the typed order of the ranking in ``current`` (the tab's state) and hands out
    the next item. A wrong order raises :class:`InvalidInput` in the rater's numbers, nothing stored."""
    groups = parse_typed_order(typed, current["answers"])
    with ctx.session() as session:
        return rating.rank_then_next(
            session=session,
            rater=user,
            kinds=rating.KINDS,
            gold_rate=ctx.settings.gold_rate,
            ranking_id=current["ranking_id"],
            order=groups,
            rationale=(why or "").strip() or None,
            idempotency_key=current["key"],
        )


def order_note(result: rankings.RankingResult) -> str:
    words = order_text(result.order)
    if not result.created:
        return message(f"That order was already recorded (best first: {words}).", "ok")
    return message(f"Order recorded (best first: {words}).", "ok")


def undo_order(ctx: UIContext, user: User, last: dict) -> rankings.RankingHandout:
    """Commits: takes the rater's last order back; the ranking comes back in the order it was shown."""
    with ctx.session() as session:
        return rating.undo_ranking(
            session=session, rater=user, ranking_id=last["ranking_id"], window_s=ctx.settings.undo_window_s
        )


def skip(ctx: UIContext, user: User, current: dict) -> None:
    """Commits: the rater passes on the ranking in ``current``; it is not handed to them again today."""
    with ctx.session() as session:
        rating.skip_ranking(session=session, rater=user, ranking_id=current["ranking_id"])

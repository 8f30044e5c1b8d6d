"""The Rate tab: one judgement at a time, a pair (two responses side by side, four vote
buttons) or a ranking (K answers to order, :mod:`feedback_ui.ui.rate_ranking`).

The item comes from :func:`rlhf.services.rating.next_item`, which leases it to this rater
in a random order of its answers (the order a judgement is read in); model names are never
sent to the page. A judgement is committed before the next item is fetched, and both happen
in one event (:func:`rlhf.services.rating.vote_then_next` and ``rank_then_next``, as ``POST
/api/votes?next=true`` and ``POST /api/rankings?next=true``), so the page never shows an item
whose predecessor is not stored. Only raters are handed an item when the page loads; engineers
and admins take one when they open this tab, and leaving it gives it back (:func:`leave`).
After a judgement the page names it and offers Undo; Skip passes on the item. Where the deployment asks
how much better (``Settings.ask_strength``), :mod:`feedback_ui.ui.rate_strength` adds Shift+1/2
("much better" in the same keystroke) and the buttons that mark the last vote.

A double click must store one vote. Three things see to it: Gradio drops clicks while
the event is pending (``trigger_mode="once"``), each hand-out carries its own
idempotency key, and a vote arriving within :data:`DOUBLE_CLICK_S` of a pair that
replaced a voted one is taken for the tail of a double click on the previous pair and
ignored (nobody reads two responses that fast).
"""

import time
import uuid
from typing import Any

import gradio as gr

import feedback_ui.ui.rate_ranking as rate_ranking
from feedback_ui.ui.access import UIContext, lookup_user, require
from feedback_ui.ui.rate_strength import STRENGTH_GUIDE_HTML, StrengthRow, much_buttons, strength_text
from feedback_ui.ui.render import (
    CHOOSE_ON_SUBMIT,
    TYPING_GUARD,
    error_message,
    error_text,
    message,
    prompt_html,
    render_markdown,
)
from feedback_ui.ui.vote_buttons import CHOICE_LABELS, VOTE_BUTTONS, keys_hint_html
from rlhf.errors import Conflict, NotFound, RLHFError
from rlhf.models import Choice, Role, Strength, User
from rlhf.services import app_settings, comparisons, rankings, rating
from rlhf.services.rating import Item
from rlhf.services.votes import MAX_RATIONALE_CHARS, votes_cast

DOUBLE_CLICK_S = 0.6
# The "left for you" counter shows "100+" beyond this many pairs.
LEFT_SHOWN_UP_TO = 100
RATIONALE_PLACEHOLDER = "Why is one better? (optional)"


def _card(title: str, text: str) -> str:
    return (
        f'<section class="rl-card" aria-label="{title}"><div class="rl-card-title">{title}</div>'
        f'<div class="rl-card-body rl-md" tabindex="0">{render_markdown(text)}</div></section>'
    )


def _progress_html(ctx: UIContext, user: User) -> str:
    with ctx.session() as session:
        votes = votes_cast(session=session, rater_id=user.id)
        left = comparisons.remaining_for_rater(session=session, rater_id=user.id, count_up_to=LEFT_SHOWN_UP_TO + 1)
        ranks = rankings.next_ranking_priority(session=session, rater_id=user.id) is not None
    # What this rater can still do, not the open total: gold pairs they answered stay open for
    # others, and pairs other raters hold are not theirs to take. Shown after every vote, so it is
    # counted only up to LEFT_SHOWN_UP_TO: an exact count visits every open pair. Rankings are
    # only said to be there (one look, the same the hand-out makes).
    return (
        f'<div class="rl-progress" role="status">Your votes: <strong>{votes}</strong> · '
        f"left for you: <strong>{left_shown(left)}</strong>{' pairs, and rankings' if ranks else ''}</div>"
    )


def left_shown(left: int) -> str:
    """The counter's text for a count made with ``count_up_to=LEFT_SHOWN_UP_TO + 1``."""
    return f"{LEFT_SHOWN_UP_TO}+" if left > LEFT_SHOWN_UP_TO else str(left)


def _guidelines_html(ctx: UIContext, asks_strength: bool = False) -> str:
    with ctx.session() as session:
        row = app_settings.get_guidelines(session=session)
    if row is None or not row.value.strip():
        text = (
            '<div class="rl-md"><p>No guidelines yet. Prefer the response that is more helpful, correct and '
            "harmless; pick <em>Tie</em> when they are equally good and <em>Both bad</em> when neither "
            "is acceptable.</p></div>"
        )
    else:
        text = f'<div class="rl-md">{render_markdown(row.value)}</div>'
    return text + (STRENGTH_GUIDE_HTML if asks_strength else "")


def _item_outputs(user: User, item: Item | None, after_vote: bool) -> dict:
    """The item (or the empty state) for this rater: keyed by component name, see :func:`build_rate_tab`."""
    if item is None:
        return {
            "state": None,
            "pair": gr.Column(visible=False),
            "empty": gr.Column(visible=True),
            "votes": gr.Row(visible=False),
            "skip": gr.Button(visible=False),
            "rationale": gr.Textbox(visible=False),
            **rate_ranking.view_values(None),
        }
    key = f"{user.id}:ui:{uuid.uuid4().hex}"
    state: dict[str, Any] = {"key": key, "guard_until": time.monotonic() + DOUBLE_CLICK_S if after_vote else 0.0}
    shown = {"state": state, "empty": gr.Column(visible=False)}
    if isinstance(item, rankings.RankingHandout):
        state.update(kind="ranking", ranking_id=item.ranking_id, answers=len(item.answers))
        return {
            **shown,
            "pair": gr.Column(visible=False),
            "votes": gr.Row(visible=False),
            "skip": gr.Button("Skip this ranking", visible=True),
            "rationale": gr.Textbox(value="", visible=True, placeholder="Why this order? (optional)"),
            **rate_ranking.view_values(item, key),
        }
    state.update(kind="pair", comparison_id=item.comparison_id)
    return {
        **shown,
        "prompt": prompt_html(item.prompt),
        "left": _card("Response A", item.a),
        "right": _card("Response B", item.b),
        "pair": gr.Column(visible=True),
        "votes": gr.Row(visible=True),
        "skip": gr.Button("Skip this pair", visible=True),
        "rationale": gr.Textbox(value="", visible=True, placeholder=RATIONALE_PLACEHOLDER),
        **rate_ranking.view_values(None),
    }


def _vote_note(choice: Choice, created: bool, strength: int | None) -> str:
    label = CHOICE_LABELS[choice] + strength_text(strength)
    if not created:
        return message(f"That vote was already recorded ({label}).", "ok")
    return message(f"Vote recorded: {label}.", "ok")


def build_rate_tab(ctx: UIContext, demo: gr.Blocks) -> gr.Tab:
    with gr.Tab("Rate", id="rate") as tab:
        state = gr.State(None)  # the item on screen: its kind, id, idempotency key and double-click guard
        last_vote = gr.State(None)  # what Undo takes back: {"kind": "pair", "id", "choice", ...} or a ranking's
        progress = gr.HTML(elem_id="rate-progress")
        with gr.Accordion("Guidelines", open=False):
            guidelines = gr.HTML(elem_id="rate-guidelines")
        with gr.Column(visible=False, elem_id="rate-pair") as pair:
            prompt = gr.HTML(elem_id="rate-prompt")
            with gr.Row(equal_height=True):
                with gr.Column(min_width=300):
                    left = gr.HTML(elem_id="response-a")
                with gr.Column(min_width=300):
                    right = gr.HTML(elem_id="response-b")
        ranking_view = rate_ranking.build_view()
        # One box for pairs and rankings. The shortcut guard (render.TYPING_GUARD) keeps number keys
        # out of it; Ctrl+Enter then a number votes on a pair with what was typed
        # (render.CHOOSE_ON_SUBMIT), Ctrl+Enter alone submits a ranking's order.
        rationale = gr.Textbox(
            label="Rationale (optional)",
            lines=2,
            max_lines=8,
            max_length=MAX_RATIONALE_CHARS,
            placeholder=RATIONALE_PLACEHOLDER,
            elem_id="rate-rationale",
            elem_classes=[TYPING_GUARD, CHOOSE_ON_SUBMIT],
            visible=False,
        )
        with gr.Column(visible=False, elem_id="rate-empty") as empty:
            gr.HTML(
                '<div class="rl-empty" role="status"><strong>Nothing left to rate.</strong><br>'
                "New pairs and rankings appear when an engineer starts a generation job.</div>"
            )
            check_again = gr.Button("Check again", size="md")
        # The choice bar stays on screen however long the answers are (sticky, see static/rlhf.css).
        with gr.Column(elem_id="rate-bar", elem_classes="rl-choice-bar"):
            status = gr.HTML(elem_id="rate-status")
            with gr.Row(elem_classes="rl-vote-row", visible=False) as vote_row:
                buttons = [gr.Button(b.label, elem_id=b.rate, variant=b.variant, min_width=150) for b in VOTE_BUTTONS]
                much = much_buttons()
            order_bar = rate_ranking.build_bar()
            with gr.Row(elem_classes="rl-after-row"):
                skip_btn = gr.Button("Skip this pair", size="sm", visible=False, elem_id="rate-skip", min_width=120)
                undo_btn = gr.Button("Undo last vote", size="sm", visible=False, elem_id="rate-undo", min_width=120)
                strength_row = StrengthRow.build()
            keys_hint = gr.HTML(keys_hint_html())

    named = {
        "state": state,
        "prompt": prompt,
        "left": left,
        "right": right,
        "progress": progress,
        "status": status,
        "pair": pair,
        "empty": empty,
        "rationale": rationale,
        "votes": vote_row,
        "skip": skip_btn,
        "undo": undo_btn,
        "last": last_vote,
        **ranking_view,
        **order_bar,
    }
    much_shown = [button for button, _ in much]
    outputs = list(named.values()) + strength_row.components + much_shown + [keys_hint]

    def asks_strength(item: Item | None) -> bool:
        """The deployment asks how much better on every pair (RLHF_ASK_STRENGTH), or this pair's
        generation job asked (``rlhf generate --ask-strength``). A ranking has no strength."""
        if isinstance(item, rankings.RankingHandout):
            return False
        if ctx.settings.ask_strength:
            return True
        if item is None:
            return False
        with ctx.session() as session:
            return rating.strength_asked(session=session, comparison_id=item.comparison_id, everywhere=False)

    def screen(
        user: User, item: Item | None, status_html: str = "", after_vote: bool = False, last: dict | None = None
    ) -> dict:
        """Every output of the tab: the item (or empty state), the counter, the status, the undo button."""
        shown = {named[k]: v for k, v in _item_outputs(user, item, after_vote).items()}
        asks = asks_strength(item)
        if shown.get(state):
            shown[state]["asks_strength"] = asks  # the vote on it may say how much better
        ranking = isinstance(item, rankings.RankingHandout)
        undo_label = "Undo last order" if last and last.get("kind") == "ranking" else "Undo last vote"
        return {
            **shown,
            progress: _progress_html(ctx, user),
            status: status_html,
            last_vote: last,
            undo_btn: gr.Button(undo_label, visible=last is not None),
            **strength_row.shown(last),
            # Shift+1/2 press these: hidden, the keys do nothing more than 1 and 2 on this pair.
            **{button: gr.Button(visible=asks and not ranking) for button in much_shown},
            keys_hint: rate_ranking.ranking_keys_hint_html() if ranking else keys_hint_html(much=asks),
        }

    def fetch(user: User) -> Item | None:
        with ctx.session() as session:
            return rating.next_item(session=session, rater=user, kinds=rating.KINDS, gold_rate=ctx.settings.gold_rate)

    def show(request: gr.Request):
        """On page load: raters land here and are handed an item; engineers and admins land on the
        Console, and take a lease only if they open this tab."""
        user = require(ctx, request)
        if user.role is not Role.rater:
            return {progress: _progress_html(ctx, user), guidelines: _guidelines_html(ctx, ctx.settings.ask_strength)}
        item = fetch(user)
        return {**screen(user, item), guidelines: _guidelines_html(ctx, asks_strength(item))}

    def opened(request: gr.Request):
        user = require(ctx, request)
        return screen(user, fetch(user))

    def not_stored(user: User, exc: RLHFError, what: str) -> dict:
        """The judgement's item closed, or its place went to another rater: say which, show the next."""
        note = message(f"Your {what} was not stored: {error_text(exc)}. Here is the next one.", "warn")
        return screen(user, fetch(user), note, after_vote=True)

    def make_vote(choice: Choice, strength: int | None = None):
        def vote(current: dict | None, why: str, request: gr.Request):
            user = require(ctx, request)
            if not current:
                return screen(user, fetch(user))
            if time.monotonic() < current.get("guard_until", 0.0):
                # The second click of a double click on the previous pair: not a judgement of this one.
                return {status: message("Ignored a click that came right after this pair appeared.", "warn")}
            if current.get("kind") == "ranking":  # a stale page's vote: this item is ordered, not voted on
                return {status: message("This is a ranking: order its answers instead of voting.", "warn")}
            fields = {
                "comparison_id": current["comparison_id"],
                "choice": choice,
                "rationale": (why or "").strip() or None,
                "idempotency_key": current["key"],
                "strength": strength,
            }
            try:
                with ctx.session() as session:
                    result, item = rating.vote_then_next(
                        session=session, rater=user, gold_rate=ctx.settings.gold_rate, kinds=rating.KINDS, **fields
                    )
            except (Conflict, NotFound) as exc:  # closed, or its place went to another rater: say which
                return not_stored(user, exc, "vote")
            except RLHFError as exc:  # e.g. a rationale that is too long: the pair stays for another try
                return {status: error_message(exc)}
            return screen(
                user,
                item,
                _vote_note(choice, result.created, result.vote.strength),
                after_vote=True,
                last={
                    "kind": "pair",
                    "id": result.vote.id,
                    "choice": choice.value,
                    "strength": result.vote.strength,
                    "asks_strength": current.get("asks_strength", False),
                },
            )

        return vote

    def rank(current: dict | None, typed: str, why: str, request: gr.Request):
        user = require(ctx, request)
        if not current:
            return screen(user, fetch(user))
        if time.monotonic() < current.get("guard_until", 0.0) and not (typed or "").strip():
            return {}  # a second Enter right after the last order went: nothing typed for this item yet
        if current.get("kind") != "ranking":
            return {status: message("This is a pair: vote on it instead of ordering.", "warn")}
        try:
            result, item = rate_ranking.submit_order(ctx, user, current, typed, why)
        except (Conflict, NotFound) as exc:
            return not_stored(user, exc, "order")
        except RLHFError as exc:  # a wrong order, a rationale too long: the ranking stays, with what was typed
            return {status: error_message(exc)}
        last = {"kind": "ranking", "ranking_id": result.ranking_id}
        return screen(user, item, rate_ranking.order_note(result), after_vote=True, last=last)

    def undo(last: dict | None, request: gr.Request):
        user = require(ctx, request)
        if not last:
            return {status: message("No vote to undo.", "warn"), undo_btn: gr.Button(visible=False)}
        try:
            if last.get("kind") == "ranking":
                item: Item = rate_ranking.undo_order(ctx, user, last)
                note = "Order taken back: here is that ranking again, in the same order."
            else:
                with ctx.session() as session:
                    item = rating.undo_vote(
                        session=session, rater=user, vote_id=last["id"], window_s=ctx.settings.undo_window_s
                    )
                note = f"Vote taken back ({CHOICE_LABELS[Choice(last['choice'])]}): here is that pair again."
        except RLHFError as exc:
            return {status: error_message(exc), undo_btn: gr.Button(visible=False), last_vote: None}
        return screen(user, item, message(note, "info"))

    def skip(current: dict | None, request: gr.Request):
        user = require(ctx, request)
        if not current:
            return screen(user, fetch(user))
        what = current.get("kind", "pair")
        try:
            if what == "ranking":
                rate_ranking.skip(ctx, user, current)
            else:
                with ctx.session() as session:
                    rating.skip_comparison(session=session, rater=user, comparison_id=current["comparison_id"])
        except RLHFError as exc:
            return {status: error_message(exc)}
        note = message(f"Skipped: you will not be shown that {what} again today.", "info")
        return screen(user, fetch(user), note, after_vote=True)

    demo.load(show, inputs=None, outputs=[*outputs, guidelines], api_visibility="private")
    private = {"api_visibility": "private", "show_progress": "hidden"}
    tab.select(opened, inputs=None, outputs=outputs, **private)
    check_again.click(opened, inputs=None, outputs=outputs, **private)
    votes = [(button, make_vote(b.choice)) for button, b in zip(buttons, VOTE_BUTTONS)]
    votes += [(button, make_vote(b.choice, Strength.much.value)) for button, b in much]
    for button, handler in votes:
        button.click(
            handler, inputs=[state, rationale], outputs=outputs, trigger_mode="once", concurrency_limit=None, **private
        )
    order = named["order"]
    for event in (order.submit, named["rank_submit"].click):  # Enter in the order box, or the button
        event(
            rank,
            inputs=[state, order, rationale],
            outputs=outputs,
            trigger_mode="once",
            concurrency_limit=None,
            **private,
        )
    undo_btn.click(undo, inputs=[last_vote], outputs=outputs, trigger_mode="once", **private)
    skip_btn.click(skip, inputs=[state], outputs=outputs, trigger_mode="once", **private)
    strength_row.wire(ctx, status=status, last_vote=last_vote)
    return tab


def leave(ctx: UIContext, request: gr.Request) -> None:
    """The rater left the Rate tab, the page or the app: the pairs and rankings leased to them go back to the pool."""
    user = lookup_user(ctx, request)
    if user is not None:
        with ctx.session() as session:
            rating.release_leases(session=session, rater_id=user.id)

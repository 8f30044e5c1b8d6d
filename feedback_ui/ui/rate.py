"""The Rate tab: one comparison at a time, two responses side by side, four vote buttons.

The pair comes from :func:`rlhf.services.comparisons.next_for_rater`, which leases it to
this rater in a random left/right order (the order a vote is read in); model names are
never sent to the page. A vote is committed before the next pair is fetched, and both
happen in one event, so the page never shows a pair whose predecessor is not stored.

A double click must store one vote. Three things see to it: Gradio drops clicks while
the event is pending (``trigger_mode="once"``), each hand-out carries its own
idempotency key, and a vote arriving within :data:`DOUBLE_CLICK_S` of a pair that
replaced a voted one is taken for the tail of a double click on the previous pair and
ignored (nobody reads two responses that fast).
"""

import time
import uuid

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, message, render_markdown
from rlhf.errors import Conflict, NotFound, RLHFError
from rlhf.models import Choice, User
from rlhf.services import app_settings, comparisons, stats
from rlhf.services.comparisons import Handout
from rlhf.services.votes import MAX_RATIONALE_CHARS, record_vote

DOUBLE_CLICK_S = 0.6
# (button text, elem_id, choice): the texts are part of the public interface.
VOTES = [("A is better", "vote-a", Choice.a), ("B is better", "vote-b", Choice.b),
         ("Tie", "vote-tie", Choice.tie), ("Both bad", "vote-bad", Choice.both_bad)]
_ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}


def _prompt_html(messages: list[dict]) -> str:
    turns = "".join(
        f'<div class="rl-turn"><div class="rl-role">{_ROLE_NAMES.get(m.get("role"), "Message")}</div>'
        f'<div class="rl-md">{render_markdown(m.get("content", ""))}</div></div>' for m in messages)
    return f'<div class="rl-prompt" aria-label="Prompt">{turns}</div>'


def _card(title: str, text: str) -> str:
    return (f'<section class="rl-card" aria-label="{title}"><div class="rl-card-title">{title}</div>'
            f'<div class="rl-card-body rl-md" tabindex="0">{render_markdown(text)}</div></section>')


def _progress_html(ctx: UIContext, user: User) -> str:
    with ctx.session() as session:
        mine = stats.rater_stats(session=session, rater_id=user.id)
    votes, open_ = mine["votes"], mine["open_comparisons"]
    return (f'<div class="rl-progress" role="status">Your votes: <strong>{votes}</strong> · '
            f'open comparisons: <strong>{open_}</strong></div>')


def _guidelines_html(ctx: UIContext) -> str:
    with ctx.session() as session:
        row = app_settings.get_guidelines(session=session)
    if row is None or not row.value.strip():
        return '<div class="rl-md"><p>No guidelines yet. Prefer the response that is more helpful, correct and ' \
               'harmless; pick <em>Tie</em> when they are equally good and <em>Both bad</em> when neither ' \
               'is acceptable.</p></div>'
    return f'<div class="rl-md">{render_markdown(row.value)}</div>'


def _next(ctx: UIContext, user: User) -> Handout | None:
    with ctx.session() as session:
        return comparisons.next_for_rater(session=session, rater=user, gold_rate=ctx.settings.gold_rate)


def _screen(ctx: UIContext, user: User, status: str = "", after_vote: bool = False) -> tuple:
    """Every output of the tab for the pair this rater should see now (or the empty state).

    ``after_vote``: the pair replaces one just voted on, so a click arriving in the next
    moment is the tail of that vote's double click.
    """
    handout = _next(ctx, user)
    progress = _progress_html(ctx, user)
    if handout is None:
        return (None, gr.skip(), gr.skip(), gr.skip(), progress, status, gr.Column(visible=False),
                gr.Column(visible=True), gr.skip())
    state = {"comparison_id": handout.comparison_id, "key": f"{user.id}:ui:{uuid.uuid4().hex}",
             "guard_until": time.monotonic() + DOUBLE_CLICK_S if after_vote else 0.0}
    return (state, _prompt_html(handout.prompt), _card("Response A", handout.a), _card("Response B", handout.b),
            progress, status, gr.Column(visible=True), gr.Column(visible=False), "")


def _status_only(status: str) -> tuple:
    """Outputs that change the status line only: the pair (and the rationale typed) stay."""
    return (*[gr.skip()] * 5, status, *[gr.skip()] * 3)


def build_rate_tab(ctx: UIContext, demo: gr.Blocks) -> gr.Tab:
    with gr.Tab("Rate", id="rate") as tab:
        state = gr.State(None)
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
            rationale = gr.Textbox(label="Rationale (optional)", lines=2, max_lines=8,
                                   max_length=MAX_RATIONALE_CHARS,
                                   placeholder="Why is one better? (optional)")
            with gr.Row(elem_classes="rl-vote-row"):
                buttons = [gr.Button(text, elem_id=elem_id, variant="primary" if choice in (Choice.a, Choice.b)
                                     else "secondary", min_width=150)
                           for text, elem_id, choice in VOTES]
            gr.HTML('<div class="rl-keys-hint">Keyboard: <kbd>1</kbd> A is better · <kbd>2</kbd> B is better · '
                    '<kbd>3</kbd> Tie · <kbd>4</kbd> Both bad</div>')
        with gr.Column(visible=False, elem_id="rate-empty") as empty:
            gr.HTML('<div class="rl-empty" role="status"><strong>Nothing left to rate.</strong><br>'
                    'New pairs appear when an engineer starts a generation job.</div>')
            check_again = gr.Button("Check again", size="md")
        status = gr.HTML(elem_id="rate-status")

    outputs = [state, prompt, left, right, progress, status, pair, empty, rationale]

    def show(request: gr.Request):
        user = require(ctx, request)
        return (*_screen(ctx, user), _guidelines_html(ctx))

    def refresh(request: gr.Request):
        return _screen(ctx, require(ctx, request))

    def make_vote(choice: Choice):
        def vote(current: dict | None, why: str, request: gr.Request):
            user = require(ctx, request)
            if not current:
                return _screen(ctx, user)
            if time.monotonic() < current.get("guard_until", 0.0):
                # The second click of a double click on the previous pair: not a judgement of this one.
                return _status_only(message("Ignored a click that came right after this pair appeared.", "warn"))
            try:
                created = _record(ctx, user, current, choice, why)
            except (Conflict, NotFound):
                return _screen(ctx, user, message("That pair was closed before your vote arrived (another rater "
                                                  "finished it); here is the next one.", "warn"), after_vote=True)
            except RLHFError as exc:  # e.g. a rationale that is too long: the pair stays for another try
                return _status_only(error_message(exc))
            note = "Vote recorded." if created else "That vote was already recorded."
            return _screen(ctx, user, message(note, "ok"), after_vote=True)

        return vote

    demo.load(show, inputs=None, outputs=[*outputs, guidelines], api_visibility="private")
    check_again.click(refresh, inputs=None, outputs=outputs, api_visibility="private")
    for button, (_, _, choice) in zip(buttons, VOTES):
        button.click(make_vote(choice), inputs=[state, rationale], outputs=outputs, trigger_mode="once",
                     concurrency_limit=None, show_progress="hidden", api_visibility="private")
    return tab


def _record(ctx: UIContext, user: User, current: dict, choice: Choice, rationale: str | None) -> bool:
    """Store the vote (committed on return); True if it is new, False if it repeated a stored one."""
    fields = {"rater": user, "comparison_id": current["comparison_id"], "choice": choice,
              "rationale": (rationale or "").strip() or None, "idempotency_key": current["key"]}
    with ctx.session() as session:
        return record_vote(session=session, **fields).created

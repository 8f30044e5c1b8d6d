"""The Arena tab: a rater talks to two anonymous serving checkpoints, side by side, and picks one.

Each turn is a battle (:mod:`rlhf.services.arena`): both answers stream from the inference
engine as escaped Markdown, then the rater votes with the Rate tab's buttons and keys.
After the vote the names are shown (``RLHF_ARENA_REVEAL``); *Continue* carries one answer
forward as the assistant turn, so the next battle's prompt is the conversation so far;
*Write a better answer* stores the answer the rater wanted (a demonstration, and a
preference over both model answers). Nothing is stored until both answers exist.

Generating holds an event slot for the whole answer, so the arena's events have their own
concurrency group and limit (``RLHF_ARENA_CONCURRENCY``), apart from the short
database events of the other tabs.
"""

import asyncio
import time
import uuid

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import error_message, message, render_markdown, script_tag
from feedback_ui.ui.vote_buttons import VOTE_BUTTONS, keys_hint_html
from rlhf.errors import RLHFError
from rlhf.inference.battle import PairStream
from rlhf.models import Choice, User
from rlhf.services import arena, demonstrations
from rlhf.services.votes import record_vote

STREAM_EVERY_S = 0.05  # at most this often a partial answer is sent to the page
_ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def arena_head() -> str:
    """The Rate tab's shortcuts for the arena's buttons (``feedback_ui/static/arena.js``)."""
    return script_tag("arena.js")


def history_html(messages: list[dict]) -> str:
    if not messages:
        return '<div class="rl-prompt rl-empty-history">Start a conversation: two anonymous models will answer.</div>'
    turns = "".join(
        f'<div class="rl-turn"><div class="rl-role">{_ROLE_NAMES.get(m["role"], "Message")}</div>'
        f'<div class="rl-md">{render_markdown(m["content"])}</div></div>'
        for m in messages
    )
    return f'<div class="rl-prompt" aria-label="Conversation">{turns}</div>'


def card(title: str, text: str, pending: bool = False) -> str:
    body = render_markdown(text) if text else ("<p><em>Waiting for the model…</em></p>" if pending else "")
    return (
        f'<section class="rl-card" aria-label="{title}"><div class="rl-card-title">{title}</div>'
        f'<div class="rl-card-body rl-md" tabindex="0" aria-live="polite">{body}</div></section>'
    )


def _plan(ctx: UIContext, user: User, messages: list[dict]) -> arena.BattlePlan:
    with ctx.session() as session:
        return arena.plan_battle(session=session, rater=user, messages=messages, settings=ctx.settings)


def _store(ctx: UIContext, user: User, battle: arena.BattlePlan, answers) -> int:
    with ctx.session() as session:
        return arena.store_battle(
            session=session, rater=user, plan=battle, answers=answers, ttl_s=ctx.settings.arena_battle_ttl_s
        ).id


def build_arena_tab(ctx: UIContext, inference) -> gr.Tab:
    with gr.Tab("Arena", id="arena") as tab:
        gr.HTML("", head=arena_head(), container=False, padding=False, elem_id="arena-assets")
        conv = gr.State({"messages": []})  # the conversation so far (user/assistant turns)
        battle = gr.State(None)  # the battle on screen: id, prompt, both answers, the vote, a written answer
        history = gr.HTML(history_html([]), elem_id="arena-history")
        with gr.Accordion("System prompt (optional)", open=False):
            system = gr.Textbox(
                label="System prompt",
                lines=2,
                max_lines=6,
                elem_id="arena-system",
                max_length=ctx.settings.arena_max_prompt_chars,
            )
        with gr.Row(equal_height=True):
            with gr.Column(min_width=300):
                card_a = gr.HTML(card("Model A", ""), elem_id="arena-a")
            with gr.Column(min_width=300):
                card_b = gr.HTML(card("Model B", ""), elem_id="arena-b")
        with gr.Column(visible=False, elem_id="arena-voting") as voting:
            with gr.Row(elem_classes="rl-vote-row"):
                buttons = [gr.Button(b.label, elem_id=b.arena, variant=b.variant, min_width=150) for b in VOTE_BUTTONS]
            gr.HTML(keys_hint_html())
        names = gr.HTML(elem_id="arena-names")
        with gr.Column(visible=False, elem_id="arena-after") as after:
            with gr.Row():
                keep = gr.Radio(
                    [("A", "a"), ("B", "b")], label="Answer to carry forward", elem_id="arena-keep", min_width=240
                )
                continue_btn = gr.Button("Continue", variant="primary", elem_id="arena-continue", min_width=150)
                write_btn = gr.Button("Write a better answer", elem_id="arena-write", min_width=200)
            with gr.Column(visible=False, elem_id="arena-editor") as editor:
                with gr.Row():
                    from_a = gr.Button("Start from A", size="sm", elem_id="arena-from-a")
                    from_b = gr.Button("Start from B", size="sm", elem_id="arena-from-b")
                written = gr.Textbox(
                    label="Your answer",
                    lines=4,
                    max_lines=16,
                    elem_id="arena-written",
                    max_length=demonstrations.MAX_DEMONSTRATION_CHARS,
                )
                save_btn = gr.Button("Save answer", variant="primary", elem_id="arena-save")
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(
                label="Your message",
                lines=2,
                max_lines=10,
                scale=5,
                elem_id="arena-prompt",
                max_length=ctx.settings.arena_max_prompt_chars,
                placeholder="Ask something; both models answer",
            )
            send = gr.Button("Send", variant="primary", scale=1, min_width=120, elem_id="arena-send")
            restart = gr.Button("New conversation", scale=1, min_width=160, elem_id="arena-new")
        status = gr.HTML(elem_id="arena-status")

    stream_outputs = [battle, history, card_a, card_b, voting, after, editor, names, status, prompt, send]

    async def start(text: str, system_text: str, state: dict, request: gr.Request):
        user = await asyncio.to_thread(require, ctx, request)
        head = [{"role": "system", "content": system_text}] if (system_text or "").strip() else []
        messages = head + state["messages"] + [{"role": "user", "content": text or ""}]
        try:
            plan = await asyncio.to_thread(_plan, ctx, user, messages)
        except RLHFError as exc:
            yield {status: error_message(exc)}
            return
        yield {
            battle: None,
            history: history_html(plan.messages),
            card_a: card("Model A", "", pending=True),
            card_b: card("Model B", "", pending=True),
            voting: gr.Column(visible=False),
            after: gr.Column(visible=False),
            editor: gr.Column(visible=False),
            names: "",
            status: message("Both models are answering…"),
            send: gr.Button(interactive=False),
        }
        pair = PairStream(inference, plan.messages, {"a": plan.a, "b": plan.b}, ctx.settings.arena_timeout_s)
        last = 0.0
        try:
            async for _side, _delta in pair.events():
                now = time.monotonic()
                if now - last >= STREAM_EVERY_S:
                    last = now
                    yield {
                        card_a: card("Model A", pair.states["a"].text, pending=True),
                        card_b: card("Model B", pair.states["b"].text, pending=True),
                    }
            answers = pair.answers()
            comparison_id = await asyncio.to_thread(_store, ctx, user, plan, answers)
        except RLHFError as exc:
            # Nothing was stored: the rater can send the same message again.
            yield {
                status: error_message(exc),
                send: gr.Button(interactive=True),
                card_a: card("Model A", pair.states["a"].text),
                card_b: card("Model B", pair.states["b"].text),
            }
            return
        current = {
            "comparison_id": comparison_id,
            "prompt": plan.messages,
            "a": answers[0].text,
            "b": answers[1].text,
            "choice": None,
            "written": None,
            "key": f"{user.id}:arena:{uuid.uuid4().hex}",
        }
        yield {
            battle: current,
            card_a: card("Model A", answers[0].text),
            card_b: card("Model B", answers[1].text),
            voting: gr.Column(visible=True),
            status: message("Which answer is better?"),
            prompt: "",
            send: gr.Button(interactive=False),
        }

    def make_vote(choice: Choice):
        def vote(current: dict | None, request: gr.Request):
            user = require(ctx, request)
            if not current or current.get("choice"):
                return {}
            try:
                with ctx.session() as session:
                    record_vote(
                        session=session,
                        rater=user,
                        comparison_id=current["comparison_id"],
                        choice=choice,
                        idempotency_key=current["key"],
                    )
                    revealed = None
                    if ctx.settings.arena_reveal:
                        revealed = arena.battle_names(
                            session=session, rater=user, comparison_id=current["comparison_id"]
                        )
            except RLHFError as exc:
                return {status: error_message(exc)}
            current = {**current, "choice": choice.value}
            who = (
                (
                    f'<div class="rl-names" role="status">A was <strong>{_esc(revealed[0])}</strong> · '
                    f"B was <strong>{_esc(revealed[1])}</strong></div>"
                )
                if revealed
                else ""
            )
            kept = choice.value if choice in (Choice.a, Choice.b) else None
            return {
                battle: current,
                voting: gr.Column(visible=False),
                after: gr.Column(visible=True),
                names: who,
                keep: gr.Radio(choices=[("A", "a"), ("B", "b")], value=kept),
                status: message("Vote recorded. Continue the conversation, or write a better answer.", "ok"),
            }

        return vote

    def carry_on(current: dict | None, kept: str | None, request: gr.Request):
        require(ctx, request)
        if not current or not current.get("choice"):
            return {status: message("Vote first, then continue.", "warn")}
        # The Radio hands back a choice's value or, from some pages, its label.
        kept = {"a": "a", "A": "a", "b": "b", "B": "b", "mine": "mine", "My answer": "mine"}.get(kept or "")
        if not kept and current["choice"] in ("a", "b"):
            kept = current["choice"]  # the winner, unless the rater picked another
        text = current.get("written") if kept == "mine" else current.get(kept or "")
        if not text:
            return {status: message("Pick the answer to carry forward (A, B, or your own).", "warn")}
        system_turns = [m for m in current["prompt"] if m["role"] == "system"]
        messages = [m for m in current["prompt"] if m["role"] != "system"] + [{"role": "assistant", "content": text}]
        return {
            conv: {"messages": messages},
            battle: None,
            history: history_html(system_turns + messages),
            card_a: card("Model A", ""),
            card_b: card("Model B", ""),
            after: gr.Column(visible=False),
            editor: gr.Column(visible=False),
            names: "",
            written: "",
            send: gr.Button(interactive=True),
            status: message("Write your next message: both models answer it with this conversation."),
        }

    def open_editor(current: dict | None):
        return {editor: gr.Column(visible=bool(current and current.get("choice")))}

    def start_from(side: str):
        def fill(current: dict | None):
            return {written: current.get(side, "") if current else ""}

        return fill

    def save(current: dict | None, text: str, request: gr.Request):
        user = require(ctx, request)
        if not current or not current.get("choice"):
            return {status: message("Vote first, then write the answer you wanted.", "warn")}
        try:
            with ctx.session() as session:
                demonstrations.record_demonstration(
                    session=session, rater=user, text=text or "", comparison_id=current["comparison_id"]
                )
        except RLHFError as exc:
            return {status: error_message(exc)}
        current = {**current, "written": (text or "").strip()}
        return {
            battle: current,
            keep: gr.Radio(choices=[("A", "a"), ("B", "b"), ("My answer", "mine")], value="mine"),
            editor: gr.Column(visible=False),
            status: message("Saved your answer. Continue with it, or with A or B.", "ok"),
        }

    def new_conversation(request: gr.Request):
        require(ctx, request)
        return {
            conv: {"messages": []},
            battle: None,
            history: history_html([]),
            card_a: card("Model A", ""),
            card_b: card("Model B", ""),
            voting: gr.Column(visible=False),
            after: gr.Column(visible=False),
            editor: gr.Column(visible=False),
            names: "",
            status: "",
            prompt: "",
            written: "",
            send: gr.Button(interactive=True),
        }

    private = {"api_visibility": "private"}
    send.click(
        start,
        [prompt, system, conv],
        stream_outputs,
        concurrency_limit=ctx.settings.arena_concurrency,
        concurrency_id="arena-battle",
        trigger_mode="once",
        show_progress="hidden",
        **private,
    )
    prompt.submit(
        start,
        [prompt, system, conv],
        stream_outputs,
        concurrency_limit=ctx.settings.arena_concurrency,
        concurrency_id="arena-battle",
        trigger_mode="once",
        show_progress="hidden",
        **private,
    )
    for button, vote_button in zip(buttons, VOTE_BUTTONS):
        button.click(
            make_vote(vote_button.choice),
            [battle],
            [battle, voting, after, names, keep, status],
            trigger_mode="once",
            show_progress="hidden",
            **private,
        )
    continue_btn.click(
        carry_on,
        [battle, keep],
        [conv, battle, history, card_a, card_b, after, editor, names, written, send, status],
        show_progress="hidden",
        **private,
    )
    write_btn.click(open_editor, [battle], [editor], show_progress="hidden", **private)
    from_a.click(start_from("a"), [battle], [written], show_progress="hidden", **private)
    from_b.click(start_from("b"), [battle], [written], show_progress="hidden", **private)
    save_btn.click(save, [battle, written], [battle, keep, editor, status], show_progress="hidden", **private)
    restart.click(
        new_conversation,
        None,
        [conv, battle, history, card_a, card_b, voting, after, editor, names, status, prompt, written, send],
        show_progress="hidden",
        **private,
    )
    return tab


def _esc(text: str) -> str:
    import html

    return html.escape(text)

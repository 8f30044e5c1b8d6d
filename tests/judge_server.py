"""A small OpenAI-compatible judge for tests: it reads the two answers out of the judge prompt and follows a rule.

It answers ``POST /v1/chat/completions`` streamed (SSE chunks) or as one JSON body. The
answers are read between the default template's ``[The Start of Assistant A's Answer]`` /
``[The End of …]`` markers; ``rule(prompt, a, b)`` says ``"A"``, ``"B"`` or ``"C"`` (a tie)
on the order shown. Its flaws are chosen per pair, by hashing the two answers whatever their
order, so both orders of one pair see the same flaw:

- ``noise``: the share of pairs on which the rule's verdict is flipped (a consistent mistake);
- ``position_bias``: the share of pairs on which it says ``[[A]]`` whatever A holds;
- ``garbage``: every reply has no verdict tag;
- ``fail_status``: requests after the first ``fail_from`` get that status, ``fail_times`` of them
  (None: all the rest).

    with JudgeServer(noise=0.1, position_bias=0.2, seed=0) as server:
        server.url, server.requests, server.tokens
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.fake_engine import serve_in_thread

A_START, A_END = "[The Start of Assistant A's Answer]", "[The End of Assistant A's Answer]"
B_START, B_END = "[The Start of Assistant B's Answer]", "[The End of Assistant B's Answer]"
QUESTION = "[User Question]"


def prefers_please(prompt: str, a: str, b: str) -> str:
    """The default rule: the answer that says "please" wins; both or neither is a tie."""
    pa, pb = "please" in a.lower(), "please" in b.lower()
    return "C" if pa == pb else ("A" if pa else "B")


def between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    if i < 0:
        return ""
    j = text.find(end, i + len(start))
    return text[i + len(start) : j if j >= 0 else len(text)].strip("\n")


def parse_prompt(text: str) -> tuple[str, str, str]:
    """(question, a, b) out of a prompt rendered from the default template."""
    question = between(text, QUESTION, A_START).strip() if QUESTION in text else ""
    return question, between(text, A_START, A_END), between(text, B_START, B_END)


@dataclass
class JudgeServer:
    rule: Callable[[str, str, str], str] = prefers_please
    noise: float = 0.0
    position_bias: float = 0.0
    seed: int = 0
    garbage: bool = False
    fail_status: int | None = None
    fail_from: int = 0  # requests answered before the failures start
    fail_times: int | None = None  # None: every request from then on fails
    requests: int = 0
    answered: int = 0
    tokens: int = 0
    bodies: list[dict] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the bearer token of each request
    url: str = ""
    _stop: Callable[[], None] | None = None

    def share(self, salt: str, a: str, b: str) -> float:
        """A number in [0, 1) fixed by the seed and the pair, whatever its order."""
        first, second = sorted((a, b))
        digest = hashlib.sha256(f"{self.seed}\0{salt}\0{first}\0{second}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def biased(self, a: str, b: str) -> bool:
        return self.share("position", a, b) < self.position_bias

    def verdict(self, prompt: str, a: str, b: str) -> str:
        """What it says on this order shown: "A", "B" or "C"."""
        if self.biased(a, b):
            return "A"
        said = self.rule(prompt, a, b)
        if self.share("noise", a, b) < self.noise:
            said = {"A": "B", "B": "A"}.get(said, said)
        return said

    def failing(self, number: int) -> int | None:
        """The status the ``number``-th request gets instead of an answer, or None."""
        if self.fail_status is None or number <= self.fail_from:
            return None
        if self.fail_times is None or number <= self.fail_from + self.fail_times:
            return self.fail_status
        return None

    def reply(self, messages: list[dict]) -> str:
        text = str(messages[-1].get("content", "")) if messages else ""
        question, a, b = parse_prompt(text)
        if self.garbage:
            return "Both answers have their merits and I cannot decide between them."
        said = self.verdict(question, a, b)
        why = {"A": "Assistant A answers better.", "B": "Assistant B answers better.", "C": "They are as good."}
        return f"{why[said]}\n\n[[{said}]]"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(body: dict, request: Request):
            self.requests += 1
            self.bodies.append(body)
            self.keys.append(request.headers.get("authorization", "").removeprefix("Bearer "))
            status = self.failing(self.requests)
            if status is not None:
                return JSONResponse({"error": {"message": f"told to answer {status}"}}, status_code=status)
            messages = body.get("messages") or []
            text = self.reply(messages)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
            words = [(" " if i else "") + w for i, w in enumerate(text.split(" "))]
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            }
            self.tokens += usage["total_tokens"]
            self.answered += 1
            model = body.get("model", "judge")
            if body.get("stream"):
                chunks = [_chunk(model, {"content": w}, None) for w in words]
                chunks += [_chunk(model, {}, "stop", usage), "data: [DONE]\n\n"]
                return StreamingResponse(iter(chunks), media_type="text/event-stream")
            return {
                "id": "judge",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }

        return app

    def __enter__(self) -> JudgeServer:
        self.url, self._stop = serve_in_thread(self.app(), "the test judge")
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def _chunk(model: str, delta: dict, finish: str | None, usage: dict | None = None) -> str:
    body: dict = {
        "id": "judge",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"

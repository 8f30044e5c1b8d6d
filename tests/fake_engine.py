"""A small OpenAI-compatible server for tests that need what the tiny model cannot show.

It streams ``/v1/chat/completions`` in the OpenAI chunk format, one word per chunk with a
set delay (answers that take seconds, to see them render progressively), counts requests
in flight (to see concurrency), and can be told to fail. Not a model: it answers with
the words of a fixed sentence, so the tests can predict the text.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse


def answer_words(model: str, messages: list[dict], max_tokens: int) -> list[str]:
    last = messages[-1]["content"] if messages else ""
    words = f"This is an answer from {model.rsplit('/', 1)[-1]} to: {last}".split()
    return [(" " if i else "") + w for i, w in enumerate(words)][:max_tokens]


@dataclass
class FakeEngine:
    delay_s: float = 0.0
    fail: bool = False
    requests: list[dict] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health():
            return {"status": "ok"}

        @app.post("/v1/chat/completions")
        async def chat(body: dict):
            self.requests.append(body)
            if self.fail:
                return JSONResponse({"error": "the fake engine was told to fail"}, status_code=500)
            words = answer_words(body["model"], body["messages"], int(body.get("max_tokens") or 64))

            async def chunks():
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    for i, word in enumerate(words):
                        await asyncio.sleep(self.delay_s)
                        yield _chunk(body["model"], {"content": word}, None)
                    reason = "length" if len(words) >= int(body.get("max_tokens") or 64) else "stop"
                    yield _chunk(body["model"], {}, reason, usage=len(words))
                finally:
                    self.in_flight -= 1

            return StreamingResponse(chunks(), media_type="text/event-stream")

        return app

    def serve(self):
        """Run on a free loopback port in a thread; returns a stopper."""
        self.url, stop = serve_in_thread(self.app(), "the fake engine")
        return stop


def serve_in_thread(app, what: str):
    """Serve an ASGI app on a free loopback port from a daemon thread: (its URL, a stopper)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError(f"{what} did not start")

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


def _chunk(model: str, delta: dict, finish: str | None, usage: int | None = None) -> str:
    body = {
        "id": "fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": 1, "completion_tokens": usage, "total_tokens": usage + 1}
    return f"data: {json.dumps(body)}\n\n"


if __name__ == "__main__":  # python -m tests.fake_engine PORT DELAY: for a browser test's server
    import sys

    engine = FakeEngine(delay_s=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
    uvicorn.run(engine.app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

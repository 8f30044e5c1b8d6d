"""One client for every OpenAI-compatible engine, built on the ``openai`` package's streaming.

:class:`Inference` is what the web app, the arena and generation jobs hold. It reaches a
server given by ``RLHF_INFERENCE_URL``, or else the embedded engine
(:class:`~rlhf.inference.engine.ManagedEngine`), which it starts when first needed. Every
failure of the engine (down, refusing, timing out, dying mid-answer) becomes one
:class:`~rlhf.errors.InferenceUnavailable` that names the engine.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from rlhf.errors import InferenceUnavailable
from rlhf.inference.engine import ManagedEngine
from rlhf.modeling.sampling import clean_text  # the same cleaning as in-worker samples; loads no model library

if TYPE_CHECKING:
    from rlhf.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ChatSampling:
    """Sampling settings sent with a request (the same fields a generation job stores)."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    def request_fields(self) -> dict[str, Any]:
        # ``n`` and ``stream_options`` are refused by transformers serve; one answer per request.
        fields: dict[str, Any] = {
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields


@dataclass
class Completion:
    text: str
    finished: bool  # the engine stopped on its own ("stop"), not at the token limit ("length")
    tokens: int | None = None  # completion tokens, when the engine reports usage


@dataclass
class StreamState:
    """What a stream has told so far: the text, and whether it ended on its own."""

    text: str = ""
    finish_reason: str | None = None
    tokens: int | None = None
    deltas: int = 0

    def completion(self) -> Completion:
        return Completion(
            text=clean_text(self.text), finished=self.finish_reason == "stop", tokens=self.tokens or self.deltas
        )


def served_model_name(*, name: str, path: str, mapping: dict[str, str] | None = None) -> str:
    """The model name the engine knows a checkpoint by.

    ``transformers serve`` loads a checkpoint directory named by its path; vLLM knows a
    ``--served-model-name`` or a LoRA adapter's name, given per checkpoint in
    ``RLHF_INFERENCE_MODELS``. Adapter checkpoints get their name here too.
    """
    return (mapping or {}).get(name) or path


@dataclass
class Inference:
    """The app's way to its engine: an external base URL, or the embedded engine it manages."""

    url: str = ""
    engine: "ManagedEngine | None" = None
    api_key: str = "none"
    timeout_s: float = 60.0
    models: dict[str, str] = field(default_factory=dict)
    label: str = ""  # what its errors call it, where not the app's engine (an AI judge)
    _clients: "weakref.WeakKeyDictionary" = field(default_factory=weakref.WeakKeyDictionary, repr=False)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Inference":
        engine = None
        if not settings.inference_url:
            engine = ManagedEngine(
                log_path=settings.data_dir / "logs" / "inference.log",
                model_timeout_s=settings.inference_model_timeout_s,
            )
        return cls(
            url=settings.inference_url,
            engine=engine,
            api_key=settings.inference_api_key,
            timeout_s=settings.arena_timeout_s,
            models=dict(settings.inference_models),
        )

    @property
    def embedded(self) -> bool:
        return self.engine is not None

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.engine is not None:
            where = self.engine.url or "not started"
            return f"the embedded inference engine (transformers serve, {where})"
        return f"the inference engine at {self.url}"

    def model_for(self, *, name: str, path: str) -> str:
        return served_model_name(name=name, path=path, mapping=self.models)

    def base_url(self) -> str:
        """The engine's base URL; starts the embedded engine when first needed (blocking)."""
        if self.engine is not None:
            return self.engine.ensure()
        return self.url

    def prepare(self, models: list[str]) -> None:
        """Load these models before they are asked for (blocking). Only the embedded engine
        needs it: a cold load inside a chat request blocks its event loop, and every other
        stream with it, while ``/load_model`` loads in a thread."""
        if self.engine is not None:
            self.engine.preload(models)

    async def aprepare(self, models: list[str]) -> None:
        try:
            await asyncio.to_thread(self.prepare, models)
        except InferenceUnavailable:
            raise
        except Exception as exc:
            raise InferenceUnavailable(f"{self.describe()} could not be started: {exc}") from exc

    def _client(self, base_url: str):
        """An ``AsyncOpenAI`` per event loop (its connection pool belongs to one loop)."""
        import openai

        loop = asyncio.get_running_loop()
        known = self._clients.get(loop)
        if known is None or known[0] != base_url:
            api = base_url.rstrip("/")
            api = api if api.endswith("/v1") else api + "/v1"
            known = (
                base_url,
                openai.AsyncOpenAI(base_url=api, api_key=self.api_key or "none", max_retries=0, timeout=self.timeout_s),
            )
            self._clients[loop] = known
        return known[1]

    async def stream(
        self, model: str, messages: list[dict], sampling: ChatSampling, state: StreamState | None = None
    ) -> AsyncIterator[str]:
        """Text deltas of one answer as the engine sends them; ``state`` collects the whole."""
        state = state if state is not None else StreamState()
        base = await asyncio.to_thread(self._base_url_or_fail)
        try:
            response = await self._client(base).chat.completions.create(
                model=model, messages=messages, stream=True, **sampling.request_fields()
            )
            async for chunk in response:
                if chunk.usage is not None:
                    state.tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.finish_reason:
                        state.finish_reason = choice.finish_reason
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        state.text += delta
                        state.deltas += 1
                        yield delta
        except (asyncio.CancelledError, GeneratorExit, InferenceUnavailable):
            raise
        except Exception as exc:  # the engine's own errors and the transport's, mid-stream or not
            raise self._failed(exc) from exc

    async def judge_call(self, model: str, messages: list[dict], *, max_tokens: int = 512) -> Completion:
        """One deterministic answer (temperature 0) in one JSON response, as a judge's verdict is asked.

        ``tokens`` is what the request cost: the engine's total (prompt and answer) where it
        reports usage. Failures raise :class:`InferenceUnavailable` whose ``retryable`` says
        whether asking again may work.
        """
        base = await asyncio.to_thread(self._base_url_or_fail)
        try:
            response = await self._client(base).chat.completions.create(
                model=model, messages=messages, stream=False, max_tokens=max_tokens, temperature=0.0
            )
        except (asyncio.CancelledError, InferenceUnavailable):
            raise
        except Exception as exc:
            raise self._failed(exc) from exc
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice and choice.message else None) or ""
        usage = response.usage
        tokens = (usage.total_tokens or usage.completion_tokens) if usage is not None else None
        return Completion(
            text=clean_text(text),
            finished=bool(choice and choice.finish_reason == "stop"),
            tokens=tokens or len(text.split()),  # no usage reported: the words, as near as it can tell
        )

    def _failed(self, exc: Exception) -> InferenceUnavailable:
        status, retryable = _status(exc)
        return InferenceUnavailable(f"{self.describe()} failed: {_reason(exc)}", status=status, retryable=retryable)

    async def complete(self, model: str, messages: list[dict], sampling: ChatSampling) -> Completion:
        """One whole answer (a streamed request, read to its end)."""
        state = StreamState()
        async for _ in self.stream(model, messages, sampling, state):
            pass
        return state.completion()

    def _base_url_or_fail(self) -> str:
        try:
            return self.base_url()
        except InferenceUnavailable:
            raise
        except Exception as exc:
            raise InferenceUnavailable(f"{self.describe()} could not be started: {exc}") from exc

    async def aclose_client(self) -> None:
        """Close this event loop's HTTP client, before a loop that will end (``asyncio.run``) closes."""
        known = self._clients.pop(asyncio.get_running_loop(), None)
        if known is not None:
            await known[1].close()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from synchronous code: ``asyncio.run``, or, where this thread
    already runs an event loop (a job executed from inside one), ``asyncio.run`` in a thread of
    its own, which that loop cannot host."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlhf-async") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _status(exc: Exception) -> tuple[int | None, bool]:
    """(the HTTP status answered or None, whether asking again may work): a 429 or 5xx, or no answer at all."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code, exc.status_code == 429 or exc.status_code >= 500
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is one too
        return None, True
    return None, False


def _reason(exc: Exception) -> str:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "it did not answer in time"
    if isinstance(exc, openai.APIConnectionError):
        return "it does not answer (connection refused or lost)"
    if isinstance(exc, openai.APIStatusError):
        return f"it answered {exc.status_code}: {str(exc.message)[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"

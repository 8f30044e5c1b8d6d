"""Two answers to one conversation, streamed side by side from the engine.

Both requests start at once and their deltas are yielded as they come, tagged ``a`` or
``b``. If either fails, or both have not finished within the timeout, the other is
cancelled and one :class:`~rlhf.errors.InferenceUnavailable` says why: the caller then
stores nothing (a battle exists only with both answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rlhf.errors import InferenceUnavailable
from rlhf.inference.client import Completion, Inference, StreamState


@dataclass
class PairStream:
    inference: Inference
    messages: list[dict]
    sides: dict  # "a"/"b" -> an object with ``model`` and ``sampling`` (a Contender)
    timeout_s: float
    states: dict[str, StreamState] = field(default_factory=lambda: {"a": StreamState(), "b": StreamState()})

    def answers(self) -> tuple[Completion, Completion]:
        return self.states["a"].completion(), self.states["b"].completion()

    async def events(self) -> AsyncIterator[tuple[str, str]]:
        """(side, delta) pairs until both answers are complete."""
        models = list(dict.fromkeys(s.model for s in self.sides.values()))
        queue: asyncio.Queue = asyncio.Queue()

        async def run(side: str) -> None:
            contender = self.sides[side]
            try:
                async for delta in self.inference.stream(
                    contender.model, self.messages, contender.sampling, self.states[side]
                ):
                    await queue.put((side, delta))
                await queue.put((side, None))
            except Exception as exc:
                await queue.put((side, exc))

        tasks: list[asyncio.Task] = []
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.inference.aprepare(models)
                tasks = [asyncio.create_task(run(side)) for side in ("a", "b")]
                done = 0
                while done < 2:
                    side, item = await queue.get()
                    if item is None:
                        done += 1
                    elif isinstance(item, Exception):
                        raise item
                    else:
                        yield side, item
        except TimeoutError:
            raise InferenceUnavailable(
                f"{self.inference.describe()} did not finish both answers within "
                f"{self.timeout_s:g} s (RLHF_ARENA_TIMEOUT_S)"
            ) from None
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> tuple[Completion, Completion]:
        async for _ in self.events():
            pass
        return self.answers()

"""Jobs run their requests with ``run_async``, also when called from a thread whose event loop runs
(as a sync Playwright session's does): ``asyncio.run`` alone would refuse there.

Each case runs in a fresh thread, so what other tests left running in the main thread (a browser
session's loop) does not decide the outcome.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from rlhf.inference.client import run_async


async def _where(value):
    await asyncio.sleep(0)
    return value, threading.current_thread().name


def _in_fresh_thread(fn):
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-caller") as pool:
        return pool.submit(fn).result()


def test_without_a_running_loop_it_runs_in_the_callers_thread():
    value, thread = _in_fresh_thread(lambda: run_async(lambda: _where(3)))
    assert value == 3 and thread.startswith("test-caller")


def test_inside_a_running_loop_it_runs_in_a_thread_of_its_own():
    async def caller():
        coro = _where(0)
        try:
            asyncio.run(coro)  # what a job did before
        except RuntimeError as exc:
            refused = "running event loop" in str(exc)
        finally:
            coro.close()
        return refused, run_async(lambda: _where(4))

    refused, (value, thread) = _in_fresh_thread(lambda: asyncio.run(caller()))
    assert refused and value == 4 and thread.startswith("rlhf-async")

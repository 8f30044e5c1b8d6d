"""Executing a judge job: ask an AI judge about each pair, in both orders, and store what it said.

1. The inputs (:func:`rlhf.services.judges.judge_job_inputs`): the judge, the pairs it has
   not judged, and the raters' guidelines its template may show.
2. Each pair is rendered with the judge's template (:mod:`rlhf.services.judge_prompts`) and
   asked at temperature 0; with ``swap``, asked again with the answers exchanged. At most
   ``concurrency`` requests are in flight. A 429, a 5xx, a refused connection or a timeout
   is asked again after 0.5, 1, 2 and 4 s.
3. Verdicts are stored every :data:`RECORD_EVERY` pairs, each batch in its own transaction,
   so a judge that fails halfway keeps what it already said. A request that still fails
   stops the job: before any answer, the judge is unreachable (the job names its URL and
   stores nothing); after, the job keeps what it stored and fails with the reason.

The result: pairs judged, the votes' choices, how many pairs were voted, inconsistent or
unparseable, tokens used, and the time taken.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass

from rlhf import db
from rlhf.errors import ConfigError, Conflict, InferenceUnavailable, RLHFError
from rlhf.inference.client import Inference, run_async
from rlhf.jobs.heartbeat import run_job
from rlhf.models import JobStatus, JudgeJob, stored_id
from rlhf.services import job_rows
from rlhf.services.checkpoints import get_checkpoint, served_name
from rlhf.services.judge_prompts import DEFAULT_TEMPLATE, parse_verdict, render, stored_terms
from rlhf.services.judges import PairToJudge, Verdict, get_judge, judge_job_inputs, record_verdicts
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
RECORD_EVERY = 20  # pairs per recording transaction
MAX_TOKENS = 512  # a short explanation, then the verdict
RATIONALE_CHARS = 4000


@dataclass(frozen=True)
class Asker:
    """How one job asks its judge: the client, the model, and what every prompt shares."""

    inference: Inference
    model: str
    template: str
    guidelines: str
    swap: bool
    concurrency: int


def execute_judge_job(job_id: int, settings: Settings | None = None) -> JobStatus | None:
    settings = settings or get_settings()
    return run_job(JudgeJob, job_id, settings, lambda engine: _judge(engine, settings, job_id))


def _asker(session, settings: Settings, judge, guidelines: str) -> Asker:
    """The judge's client: its URL with its key from the environment, or the app's engine for a checkpoint."""
    common = {
        "template": judge.template or DEFAULT_TEMPLATE,
        "guidelines": guidelines,
        "swap": judge.swap,
        "concurrency": max(1, judge.concurrency),
    }
    if judge.url:
        key = "none"
        if judge.api_key_env:
            key = os.environ.get(judge.api_key_env, "")
            if not key:
                raise ConfigError(
                    f"judge {judge.name!r} reads its API key from the environment variable "
                    f"{judge.api_key_env}, which is not set where the job runs"
                )
        label = f"judge {judge.name!r} at {judge.url}"
        inference = Inference(url=judge.url, api_key=key, timeout_s=judge.timeout_s, label=label)
        return Asker(inference, judge.model or "", **common)
    ckpt = get_checkpoint(session=session, checkpoint_id=judge.checkpoint_id)
    engine = Inference.from_settings(settings)
    label = f"judge {judge.name!r} (checkpoint {ckpt.id} on {engine.describe()})"
    inference = dataclasses.replace(engine, timeout_s=judge.timeout_s, label=label)
    return Asker(inference, served_name(session=session, settings=settings, checkpoint=ckpt), **common)


def _judge(engine, settings: Settings, job_id: int) -> dict:
    """Ask and record: the job's work, between its claim and its end."""
    with db.session_scope(engine) as session:
        judge, pairs, guidelines = judge_job_inputs(session=session, job_id=job_id)
        judge_id = stored_id(judge)
        asker = _asker(session, settings, judge, guidelines)
    log.info("judge job %s: %d pairs for %s", job_id, len(pairs), asker.inference.describe())
    try:
        if pairs:
            asker.inference.prepare([asker.model])  # the embedded engine loads a checkpoint judge first
        return _ask_and_record(engine, asker, judge_id, job_id, pairs)
    finally:
        asker.inference.close()


def _ask_and_record(engine, asker: Asker, judge_id: int, job_id: int, pairs: list[PairToJudge]) -> dict:
    counts: Counter[str] = Counter()
    choices: Counter[str] = Counter()
    tokens = 0

    def record(batch: list[Verdict], seconds: float | None = None) -> dict | None:
        """Store a batch in a transaction of its own; with ``seconds``, the last one, which ends the job."""
        nonlocal counts, choices, tokens
        result = None
        with db.session_scope(engine) as session:
            job = job_rows.get_job(session=session, table=JudgeJob, job_id=job_id)
            if job.status is not JobStatus.running:  # ended elsewhere (reaped): it stores nothing more
                raise Conflict(f"judge job {job_id} is {job.status.value}: {job.error or 'it was ended elsewhere'}")
            judge = get_judge(session=session, judge=judge_id)
            new_counts = counts + Counter(record_verdicts(session=session, judge=judge, job_id=job_id, verdicts=batch))
            new_choices = choices + Counter(v.verdict for v in batch if v.outcome == "voted" and v.verdict)
            new_tokens = tokens + sum(v.tokens for v in batch)
            if seconds is not None:
                result = _result(len(pairs), new_counts, new_choices, new_tokens, seconds)
                # In the recording transaction: a job the reaper failed meanwhile stores no last batch.
                job_rows.finish_job(
                    session=session, table=JudgeJob, job_id=job_id, status=JobStatus.succeeded, result=result
                )
        counts, choices, tokens = new_counts, new_choices, new_tokens  # committed
        return result

    started = time.monotonic()
    pending, failure, answered = run_async(lambda: _ask_all(asker, pairs, record))
    if failure is not None:
        if not answered:
            if isinstance(failure, InferenceUnavailable):
                raise RLHFError(f"{failure}; nothing was stored") from failure
            raise failure  # a template that cannot be rendered, say: its own error
        if pending:  # answers already paid for are kept
            record(pending)
        stored = sum(counts.values())
        raise RLHFError(f"{failure}; the job stopped after {stored} pairs, whose verdicts are kept") from failure
    result = record(pending, seconds=round(time.monotonic() - started, 3))
    log.info("judge job %s: %s", job_id, result)
    return result or {}


def _result(n_pairs: int, counts: Counter, choices: Counter, tokens: int, seconds: float) -> dict:
    judged = sum(counts.values())
    return {
        "pairs_judged": judged,
        "pairs_skipped": counts["skipped"],  # judged meanwhile by another job of the same judge
        "verdicts": {c: choices[c] for c in ("a", "b", "tie")},  # the votes stored, by choice
        "voted": counts["voted"],
        "inconsistent": counts["inconsistent"],
        "unparseable": counts["unparseable"],
        "tokens": tokens,
        "seconds": seconds,
        "pairs_per_s": round(judged / seconds, 3) if seconds > 0 else None,
        "pairs_found": n_pairs,
    }


async def _ask_all(asker: Asker, pairs: list[PairToJudge], record) -> tuple[list[Verdict], Exception | None, int]:
    """Ask about every pair, recording every :data:`RECORD_EVERY`; (unrecorded verdicts, the failure, answers).

    ``concurrency`` workers take the pairs in order, each asking one request at a time, so
    pairs end in about their order and at most ``concurrency`` requests are in flight. The
    first request that fails for good stops them all.
    """
    queue = iter(pairs)  # shared by the workers: next() never yields to the loop
    pending: list[Verdict] = []
    failure: Exception | None = None
    answered = 0

    async def call(a: str, b: str, messages: list[dict]) -> tuple[str, int]:
        nonlocal answered
        prompt = render(asker.template, guidelines=asker.guidelines, messages=messages, a=a, b=b)
        for delay in (*RETRY_DELAYS_S, None):
            try:
                completion = await asker.inference.judge_call(asker.model, prompt, max_tokens=MAX_TOKENS)
                break
            except InferenceUnavailable as exc:
                if not exc.retryable or delay is None:
                    raise
                # The worker waits rather than asking another pair: a rate-limited judge is not asked harder.
                log.warning("%s; asking again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
        answered += 1
        return completion.text, completion.tokens or 0

    async def one(pair: PairToJudge) -> Verdict:
        first, tokens = await call(pair.a, pair.b, pair.messages)
        swapped = None
        if asker.swap:
            said, more = await call(pair.b, pair.a, pair.messages)
            swapped, tokens = stored_terms(parse_verdict(said), swapped=True), tokens + more
        return Verdict(
            comparison_id=pair.comparison_id,
            verdict=parse_verdict(first),
            swapped_verdict=swapped,
            asked_swapped=asker.swap,
            rationale=first.strip()[:RATIONALE_CHARS] or None,
            tokens=tokens,
        )

    async def worker() -> None:
        nonlocal failure, pending
        for pair in queue:
            try:
                verdict = await one(pair)
            except Exception as exc:
                failure = failure or exc
                raise
            pending.append(verdict)
            if len(pending) >= RECORD_EVERY:
                batch, pending = pending, []
                record(batch)  # in the loop's thread: a short write while the requests in flight wait

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(asker.concurrency, len(pairs))):
                group.create_task(worker())
    except BaseExceptionGroup as caught:
        if failure is None:  # storing failed, not a request: that is the job's reason
            raise caught.exceptions[0] from None
    finally:
        await asker.inference.aclose_client()  # its connections belong to this loop, which ends here
    return pending, failure, answered

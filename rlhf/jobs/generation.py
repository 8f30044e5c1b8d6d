"""Executing a generation job: sample from every serving checkpoint and open comparisons.

Pairing: with two or more serving checkpoints the newest is compared against each of
the others (that is where a new round's change shows); with one, two of its samples are
compared. Identical responses are not paired (there is nothing to choose).

Pair selection: ``random`` opens every pair of the prompts it sampled. ``uncertain``
samples a larger pool of prompts, scores both responses of every candidate pair with a
reward model, and opens the pairs of the ``limit`` prompts whose closest pair has the
smallest margin |reward(a) − reward(b)|, in ascending margin order. Raters are handed
open comparisons in id order, so the pairs the reward model is least sure about are
rated first; each comparison records its margin.

Sampling: with ``RLHF_INFERENCE_URL`` set, the prompts go to that engine as concurrent
requests (:mod:`rlhf.inference.generate`); without it, the worker loads each checkpoint
and samples in batches. The stored parameters are the same either way.
"""

from __future__ import annotations

import logging
import statistics

from sqlmodel import col, func, select

from rlhf import db
from rlhf.errors import RLHFError
from rlhf.inference.client import Inference
from rlhf.inference.generate import sample_through_engine
from rlhf.jobs.heartbeat import run_job
from rlhf.modeling.sampling import SamplingParams, sample_checkpoint
from rlhf.models import Comparison, GenerationJob, JobStatus, Prompt, Response, stored_id
from rlhf.services import generation_jobs as jobs
from rlhf.services import job_rows
from rlhf.services.checkpoints import (
    engine_ready,
    get_checkpoint,
    model_ref,
    served_name,
    serving_checkpoints,
    unmergeable_reason,
)
from rlhf.services.comparisons import open_comparison
from rlhf.services.prompts import list_prompts
from rlhf.services.rankings import open_ranking
from rlhf.settings import Settings, get_settings
from rlhf.training.scoring import load_reward_model, score_conversations

log = logging.getLogger(__name__)


def pick_prompts(session, limit: int | None, tag: str | None) -> list[Prompt]:
    """Prompts with the fewest comparisons first, so every prompt gets its turn."""
    counts = dict(session.exec(select(Comparison.prompt_id, func.count()).group_by(col(Comparison.prompt_id))).all())
    prompts = sorted(list_prompts(session=session, tag=tag), key=lambda p: (counts.get(p.id, 0), p.id))
    return prompts[:limit] if limit else prompts


def execute_generation_job(job_id: int, settings: Settings | None = None) -> JobStatus | None:
    settings = settings or get_settings()
    return run_job(GenerationJob, job_id, settings, lambda engine: _generate(engine, settings, job_id))


def _plan(session, settings: Settings, job_id: int):
    """What the job samples: its parameters, (checkpoint id, model) pairs, and the prompts."""
    p = jobs.job_params(jobs.get_generation_job(session=session, job_id=job_id))
    checkpoints = serving_checkpoints(session=session)
    prompts = pick_prompts(session, p.pool if p.strategy == "uncertain" else p.limit, p.tag)
    # Adapter checkpoints load over their base; an engine gets a LoRA one's merged copy. A prompt-tuning
    # one (no OpenAI-compatible engine serves it), and a LoRA one whose merge job has not made its copy
    # yet, sample in this worker, with the same parameters.
    plan = [(c.id, model_ref(session=session, checkpoint=c)) for c in checkpoints]
    in_worker = {c.id for c in checkpoints if unmergeable_reason(c) or not engine_ready(settings, c)}
    served = (
        {
            c.id: served_name(session=session, settings=settings, checkpoint=c)
            for c in checkpoints
            if c.id not in in_worker
        }
        if settings.inference_url
        else {}
    )
    return p, plan, in_worker, served, [(pr.id, pr.messages) for pr in prompts]


def _generate(engine, settings: Settings, job_id: int) -> dict:
    """Sample, score and store: the job's work, between its claim and its end."""
    with db.session_scope(engine) as session:
        p, plan, in_worker, served, prompt_rows = _plan(session, settings, job_id)
    uncertain = p.strategy == "uncertain"
    if not plan or not prompt_rows:
        raise RLHFError("nothing to do: no serving checkpoint" if not plan else "nothing to do: no prompts")
    reward_path = None
    if uncertain:
        with db.session_scope(engine) as session:
            reward_path = model_ref(
                session=session, checkpoint=get_checkpoint(session=session, checkpoint_id=p.reward_checkpoint_id)
            )
    per = -(-p.rank // len(plan)) if p.rank else p.per_checkpoint or (2 if len(plan) == 1 else 1)
    sampling = SamplingParams(seed=p.seed if p.seed is not None else job_id, **p.sampling.model_dump())
    samples = {}
    for ckpt_id, path in plan:
        log.info("generation job %s: sampling %d x %d from checkpoint %s", job_id, len(prompt_rows), per, ckpt_id)
        if settings.inference_url and ckpt_id not in in_worker:
            samples[ckpt_id] = sample_through_engine(
                Inference.from_settings(settings),
                served[ckpt_id],
                [m for _, m in prompt_rows],
                n=per,
                params=sampling,
                concurrency=settings.inference_concurrency,
            )
        else:
            samples[ckpt_id] = sample_checkpoint(path, [m for _, m in prompt_rows], n=per, params=sampling)
    # Scored before the session opens: no transaction waits on the reward model.
    scored = score_candidates(reward_path, prompt_rows, samples, plan, per) if uncertain else None
    with db.session_scope(engine) as session:
        if p.rank:
            result = _store_rankings(session, job_id, plan, prompt_rows, samples, sampling, p)
        elif uncertain:
            result = _store_uncertain(session, job_id, plan, prompt_rows, samples, sampling, p, scored)
        else:
            result = _store(session, job_id, plan, prompt_rows, samples, per, sampling, p)
        # In the storing transaction: a job the reaper failed meanwhile stores nothing.
        job_rows.finish_job(
            session=session, table=GenerationJob, job_id=job_id, status=JobStatus.succeeded, result=result
        )
    return result


def _pair_indices(plan, per) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Which samples of one prompt face each other: ((checkpoint, sample), (checkpoint, sample)) pairs."""
    newest = plan[-1][0]
    if len(plan) == 1:
        return [((newest, k), (newest, k + 1)) for k in range(0, per - 1, 2)]
    return [((newest, k), (other, k)) for other, _ in plan[:-1] for k in range(per)]


def _response(prompt_id, ckpt_id, job_id, sample, k, sampling) -> Response:
    return Response(
        prompt_id=prompt_id,
        checkpoint_id=ckpt_id,
        job_id=job_id,
        text=sample.text,
        finished=sample.finished,
        params={**sampling.as_dict(), "sample": k},
    )


def _store(session, job_id, plan, prompt_rows, samples, per, sampling, p) -> dict:
    n_responses = n_comparisons = 0
    for idx, (prompt_id, _) in enumerate(prompt_rows):
        stored: dict[int, list[Response]] = {}
        for ckpt_id, _ in plan:
            stored[ckpt_id] = []
            for k, s in enumerate(samples[ckpt_id][idx]):
                r = _response(prompt_id, ckpt_id, job_id, s, k, sampling)
                session.add(r)
                stored[ckpt_id].append(r)
                n_responses += 1
        session.flush()
        for (ca, ka), (cb, kb) in _pair_indices(plan, per):
            a, b = stored[ca][ka], stored[cb][kb]
            if a.text.strip() == b.text.strip():
                continue
            open_comparison(
                session=session,
                prompt_id=prompt_id,
                response_a_id=stored_id(a),
                response_b_id=stored_id(b),
                target_votes=p.target_votes,
                strategy=p.strategy,
                job_id=job_id,
            )
            n_comparisons += 1
    return {
        "prompts": len(prompt_rows),
        "responses": n_responses,
        "comparisons": n_comparisons,
        "checkpoints": [c for c, _ in plan],
        "strategy": "random",
    }


def _store_rankings(session, job_id, plan, prompt_rows, samples, sampling, p) -> dict:
    """One ranking of ``rank`` answers per prompt: answer j from the checkpoints in turn, newest first."""
    order = [ckpt_id for ckpt_id, _ in reversed(plan)]
    picks = [(order[j % len(order)], j // len(order)) for j in range(p.rank)]
    n_responses = n_rankings = n_comparisons = 0
    for idx, (prompt_id, _) in enumerate(prompt_rows):
        stored = [_response(prompt_id, c, job_id, samples[c][idx][k], k, sampling) for c, k in picks]
        session.add_all(stored)
        session.flush()
        n_responses += len(stored)
        ranking = open_ranking(
            session=session,
            prompt_id=prompt_id,
            response_ids=[stored_id(r) for r in stored],
            target_votes=p.target_votes,
            job_id=job_id,
        )
        if ranking is not None:
            n_rankings += 1
            n_comparisons += len(ranking.response_ids) * (len(ranking.response_ids) - 1) // 2
    return {
        "prompts": len(prompt_rows),
        "responses": n_responses,
        "rankings": n_rankings,
        "comparisons": n_comparisons,
        "checkpoints": [c for c, _ in plan],
        "strategy": "random",
        "rank": p.rank,
    }


def score_candidates(reward_path, prompt_rows, samples, plan, per) -> list[tuple[float, int, tuple, tuple]]:
    """(|margin|, prompt index, side a, side b) for every candidate pair with two different answers."""
    candidates = []
    for idx, (_, messages) in enumerate(prompt_rows):
        for (ca, ka), (cb, kb) in _pair_indices(plan, per):
            if samples[ca][idx][ka].text.strip() != samples[cb][idx][kb].text.strip():
                candidates.append((idx, (ca, ka), (cb, kb)))
    if not candidates:
        return []
    conversations = []
    for idx, (ca, ka), (cb, kb) in candidates:
        messages = prompt_rows[idx][1]
        conversations += [
            messages + [{"role": "assistant", "content": samples[ca][idx][ka].text}],
            messages + [{"role": "assistant", "content": samples[cb][idx][kb].text}],
        ]
    model, tokenizer = load_reward_model(reward_path)
    scores = score_conversations(model, tokenizer, conversations)
    return [(abs(scores[2 * i] - scores[2 * i + 1]), *c) for i, c in enumerate(candidates)]


def _store_uncertain(session, job_id, plan, prompt_rows, samples, sampling, p, scored) -> dict:
    # A prompt counts by its closest pair; the ``limit`` closest prompts are opened, all their pairs in
    # ascending margin order, so "--limit N" means N prompts' worth of comparisons, as with random.
    closest: dict[int, float] = {}
    for margin, idx, _, _ in scored:
        closest[idx] = min(margin, closest.get(idx, margin))
    chosen = set(sorted(closest, key=lambda i: (closest[i], i))[: p.limit or len(closest)])
    opened = sorted((c for c in scored if c[1] in chosen), key=lambda c: (c[0], c[1]))
    # Only the responses of opened pairs are stored: an unopened response is never shown to a
    # rater nor trained on, and its prompt, still without a comparison, comes first in the next
    # job, where it is sampled again from the then-current policy.
    stored: dict[tuple[int, int, int], Response] = {}
    for margin, idx, side_a, side_b in opened:
        prompt_id = prompt_rows[idx][0]
        for ckpt_id, k in (side_a, side_b):
            if (idx, ckpt_id, k) not in stored:
                r = _response(prompt_id, ckpt_id, job_id, samples[ckpt_id][idx][k], k, sampling)
                session.add(r)
                stored[(idx, ckpt_id, k)] = r
        session.flush()
        comp = open_comparison(
            session=session,
            prompt_id=prompt_id,
            response_a_id=stored_id(stored[(idx, *side_a)]),
            response_b_id=stored_id(stored[(idx, *side_b)]),
            target_votes=p.target_votes,
            strategy="uncertain",
            job_id=job_id,
        )
        comp.reward_margin = margin
        session.add(comp)
        session.flush()
    return {
        "prompts": len(chosen),
        "responses": len(stored),
        "comparisons": len(opened),
        "checkpoints": [c for c, _ in plan],
        "strategy": "uncertain",
        "reward_checkpoint_id": p.reward_checkpoint_id,
        "candidate_prompts": len(prompt_rows),
        "candidates": len(scored),
        **_margin_stats("margin", [c[0] for c in opened]),
        **_margin_stats("candidate_margin", [c[0] for c in scored]),
    }


def _margin_stats(prefix: str, margins: list[float]) -> dict[str, float]:
    if not margins:
        return {}
    return {
        f"{prefix}_min": round(min(margins), 6),
        f"{prefix}_median": round(statistics.median(margins), 6),
        f"{prefix}_max": round(max(margins), 6),
    }

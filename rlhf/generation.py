"""Executing a generation job: sample from every serving checkpoint and open comparisons.

Pairing: with two or more serving checkpoints the newest is compared against each of
the others (that is where a new round's change shows); with one, two of its samples are
compared. Identical responses are not paired (there is nothing to choose).
"""

from __future__ import annotations

import logging
import traceback

from sqlmodel import func, select

from rlhf import db
from rlhf.errors import RLHFError
from rlhf.models import Comparison, JobStatus, Prompt, Response
from rlhf.sampling import SamplingParams, sample_checkpoint
from rlhf.services import generation_jobs as jobs
from rlhf.services.checkpoints import serving_checkpoints
from rlhf.services.comparisons import open_comparison
from rlhf.services.prompts import list_prompts
from rlhf.settings import Settings, get_settings

log = logging.getLogger(__name__)


def pick_prompts(session, limit: int | None, tag: str | None) -> list[Prompt]:
    """Prompts with the fewest comparisons first, so every prompt gets its turn."""
    counts = dict(session.exec(select(Comparison.prompt_id, func.count()).group_by(Comparison.prompt_id)).all())
    prompts = sorted(list_prompts(session=session, tag=tag), key=lambda p: (counts.get(p.id, 0), p.id))
    return prompts[:limit] if limit else prompts


def execute_generation_job(job_id: int, settings: Settings | None = None) -> JobStatus | None:
    settings = settings or get_settings()
    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as session:
        if not jobs.claim_generation_job(session=session, job_id=job_id):
            return None
        job = jobs.get_generation_job(session=session, job_id=job_id)
        p = job.params
        checkpoints = serving_checkpoints(session=session)
        prompts = pick_prompts(session, p.get("limit"), p.get("tag"))
        plan = [(c.id, c.path) for c in checkpoints]
        prompt_rows = [(pr.id, pr.messages) for pr in prompts]
    try:
        if not plan or not prompt_rows:
            raise RLHFError("nothing to do: no serving checkpoint" if not plan else "nothing to do: no prompts")
        per = p.get("per_checkpoint") or (2 if len(plan) == 1 else 1)
        sampling = SamplingParams(seed=int(p.get("seed") or job_id), **(p.get("sampling") or {}))
        samples = {}
        for ckpt_id, path in plan:
            log.info("generation job %s: sampling %d x %d from checkpoint %s", job_id, len(prompt_rows), per, ckpt_id)
            samples[ckpt_id] = sample_checkpoint(path, [m for _, m in prompt_rows], n=per, params=sampling)
        with db.session_scope(engine) as session:
            result = _store(session, job_id, plan, prompt_rows, samples, per, sampling, p)
            jobs.finish_generation_job(session=session, job_id=job_id, status=JobStatus.succeeded, result=result)
        return JobStatus.succeeded
    except Exception as exc:  # a failed job records why; the worker lives on
        log.exception("generation job %s failed", job_id)
        reason = str(exc) if isinstance(exc, RLHFError) else f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        with db.session_scope(engine) as session:
            jobs.finish_generation_job(session=session, job_id=job_id, status=JobStatus.failed, error=reason)
        return JobStatus.failed


def _store(session, job_id, plan, prompt_rows, samples, per, sampling, p) -> dict:
    n_responses = n_comparisons = 0
    newest = plan[-1][0]
    for idx, (prompt_id, _) in enumerate(prompt_rows):
        stored: dict[int, list[Response]] = {}
        for ckpt_id, _ in plan:
            stored[ckpt_id] = []
            for k, s in enumerate(samples[ckpt_id][idx]):
                r = Response(prompt_id=prompt_id, checkpoint_id=ckpt_id, job_id=job_id, text=s.text,
                             finished=s.finished, params={**sampling.as_dict(), "sample": k})
                session.add(r)
                stored[ckpt_id].append(r)
                n_responses += 1
        session.flush()
        if len(plan) == 1:
            pairs = [(stored[newest][k], stored[newest][k + 1]) for k in range(0, per - 1, 2)]
        else:
            pairs = [(stored[newest][k], stored[other][k]) for other, _ in plan[:-1] for k in range(per)]
        for a, b in pairs:
            if a.text.strip() == b.text.strip():
                continue
            open_comparison(session=session, prompt_id=prompt_id, response_a_id=a.id, response_b_id=b.id,
                            target_votes=p.get("target_votes", 1), strategy=p.get("strategy", "random"),
                            job_id=job_id)
            n_comparisons += 1
    return {"prompts": len(prompt_rows), "responses": n_responses, "comparisons": n_comparisons,
            "checkpoints": [c for c, _ in plan]}

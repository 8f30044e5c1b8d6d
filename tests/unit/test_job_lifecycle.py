"""One lifecycle for every worker job table: runs, generation jobs and label jobs claim, beat, end and are
reaped by the same functions; a table that has not opted in is refused."""

from datetime import timedelta

import pytest
from sqlmodel import select

from rlhf.errors import Conflict, NotFound
from rlhf.models import Algorithm, GenerationJob, JobStatus, JudgeJob, LabelJob, MergeJob, Prompt, TrainingRun, utcnow
from rlhf.services import job_rows
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.generation_jobs import queued_ids

TABLES = [TrainingRun, GenerationJob, LabelJob, MergeJob, JudgeJob]


def _rows(session, table, n: int) -> list:
    def judge_id() -> int:
        from rlhf.services.judges import get_judge, register_judge

        try:
            return get_judge(session=session, judge="lifecycle").id
        except NotFound:
            return register_judge(session=session, name="lifecycle", url="http://judge.example", model="m").id

    ckpt = register_checkpoint(
        session=session, path="org/m", name=f"m-{table.__name__}", kind="reward" if table is LabelJob else None
    )
    make = {
        TrainingRun: lambda: TrainingRun(algorithm=Algorithm.dpo, base_checkpoint_id=ckpt.id),
        GenerationJob: lambda: GenerationJob(params={}),
        LabelJob: lambda: LabelJob(reward_checkpoint_id=ckpt.id, min_confidence=0.9),
        MergeJob: lambda: MergeJob(checkpoint_id=ckpt.id),
        JudgeJob: lambda: JudgeJob(judge_id=judge_id()),
    }[table]
    rows = [make() for _ in range(n)]
    session.add_all(rows)
    session.commit()
    return rows


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.__name__)
def test_every_worker_job_is_claimed_once_beats_and_a_silent_one_is_reaped_for_good(session, table):
    silent, beating, queued = _rows(session, table, 3)
    assert job_rows.queued_job_ids(session=session, table=table) == [silent.id, beating.id, queued.id]
    for job in (silent, beating):
        assert job_rows.claim_job(session=session, table=table, job_id=job.id, worker="w1")
    assert not job_rows.claim_job(session=session, table=table, job_id=silent.id, worker="w2")
    session.get(table, silent.id).heartbeat_at = utcnow() - timedelta(minutes=10)
    session.commit()
    assert job_rows.beat(session=session, table=table, job_id=beating.id)

    assert job_rows.reap_stale_jobs(session=session, table=table, timeout=timedelta(minutes=5)) == [silent.id]
    session.commit()
    statuses = {j.id: (j.status, j.error) for j in session.exec(select(table))}
    # A run names the worker that claimed it; a job table without a worker column says "its worker".
    who = "worker w1" if table is TrainingRun else "its worker"
    assert statuses[silent.id] == (JobStatus.failed, f"{who} stopped reporting (no heartbeat for 300 s)")
    assert statuses[beating.id][0] is JobStatus.running and statuses[queued.id][0] is JobStatus.queued

    # The reaped job's worker, back, can neither beat nor end it, and the first reason stays.
    assert not job_rows.beat(session=session, table=table, job_id=silent.id)
    with pytest.raises(Conflict, match="already ended"):
        job_rows.finish_job(session=session, table=table, job_id=silent.id, status=JobStatus.succeeded)
    assert not job_rows.fail_job(session=session, table=table, job_id=silent.id, error="later reason")
    assert job_rows.fail_job(session=session, table=table, job_id=queued.id, error="broker down")
    session.commit()
    assert job_rows.get_job(session=session, table=table, job_id=silent.id).error.endswith("(no heartbeat for 300 s)")
    assert job_rows.get_job(session=session, table=table, job_id=queued.id).error == "broker down"
    with pytest.raises(NotFound, match=f"no {job_rows.what(table)} 999999"):
        job_rows.get_job(session=session, table=table, job_id=999999)


def test_the_embedded_workers_to_do_list_is_the_queued_rows(session):
    gen = _rows(session, GenerationJob, 1)[0]
    run = _rows(session, TrainingRun, 1)[0]
    assert queued_ids(session=session) == ([gen.id], [run.id])


def test_a_table_that_has_not_opted_in_is_never_claimed_or_reaped(session):
    """An autopilot round waits days on raters: it is not a worker job and nothing here may touch it."""
    for call in (
        lambda: job_rows.claim_job(session=session, table=Prompt, job_id=1),
        lambda: job_rows.reap_stale_jobs(session=session, table=Prompt, timeout=timedelta(0)),
        lambda: job_rows.beat(session=session, table=Prompt, job_id=1),
    ):
        with pytest.raises(TypeError, match="not a worker job table"):
            call()
    assert set(job_rows.WORKER_JOBS) == set(TABLES)

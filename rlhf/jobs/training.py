"""Executing a queued training run: the part a worker (Celery or embedded) calls with an id.

The worker claims the run, writes the frozen data and a spec into the run's folder,
starts the trainer process, tails its progress into the database, and only when the
trainer has finished and written its result renames the model directory into place and
registers the checkpoint. Any other ending leaves a failed (or cancelled) run, its
reason stored, and nothing under the final directory name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from rlhf import db
from rlhf.errors import Conflict, InvalidInput, RLHFError
from rlhf.jobs.merging import execute_merge_job
from rlhf.models import Algorithm, Checkpoint, CheckpointKind, JobStatus, TrainingRun, stored_id
from rlhf.services import runs as runs_svc
from rlhf.services.checkpoints import merged_dir, model_ref, register_checkpoint, unmergeable_reason
from rlhf.services.dataset import Snapshot
from rlhf.services.demonstrations import snapshot_demonstrations
from rlhf.services.merges import serving_copy_job
from rlhf.services.prompts import list_prompts, split_heldout
from rlhf.services.run_data import write_run_rows
from rlhf.services.snapshots import PreferenceSnapshot, SFTSnapshot
from rlhf.settings import Settings, get_settings
from rlhf.training.progress import RunProgress
from rlhf.training.spec import MergeStep, TrainerSpec, read_jsonl

log = logging.getLogger(__name__)
POLL_S = 1.0
STOP_GRACE_S = 30.0


def run_dir(settings: Settings, run_id: int) -> Path:
    return settings.runs_dir / f"run-{run_id}"


def final_dir(settings: Settings, run: TrainingRun) -> Path:
    return settings.checkpoints_dir / f"{run.algorithm.value}-run{run.id}"


def _votes(snapshot: Snapshot | None) -> PreferenceSnapshot:
    """A run's snapshot as the votes it froze: DPO, reward and SFT-from-votes runs store one."""
    if not isinstance(snapshot, PreferenceSnapshot):
        raise InvalidInput("the run's snapshot holds no preference rows")
    return snapshot


def _prepare(session, settings: Settings, run: TrainingRun) -> TrainerSpec:
    """Write everything the trainer reads; nothing in it refers back to the database."""
    rdir = run_dir(settings, stored_id(run))
    if rdir.exists():
        shutil.rmtree(rdir)  # leftovers of an earlier attempt at this run
    rdir.mkdir(parents=True)
    base = session.get(Checkpoint, run.base_checkpoint_id)
    reward = session.get(Checkpoint, run.reward_checkpoint_id) if run.reward_checkpoint_id else None
    algorithm = run.algorithm
    data_path = rdir / "data.jsonl"
    data: list[dict] | None = None  # None: the rows are streamed into data_path from the frozen votes
    if algorithm in (Algorithm.dpo, Algorithm.reward):
        write_run_rows(session=session, run=run, path=data_path)
    elif algorithm is Algorithm.sft:
        from rlhf.training.sft import demonstrations_to_examples  # heavy: loads torch into the worker's parent

        snapshot = Snapshot.of(run)
        if run.params.get("data"):
            data = demonstrations_to_examples(read_jsonl(run.params["data"]))
        elif isinstance(snapshot, SFTSnapshot):
            data = demonstrations_to_examples(
                [r.model_dump() for r in snapshot_demonstrations(session=session, snapshot=snapshot)]
            )
        else:
            _votes(snapshot)
            write_run_rows(
                session=session,
                run=run,
                path=data_path,
                shape=lambda r: {"prompt": r["prompt"], "completion": r["chosen"]},
            )
    tag = run.params.get("prompt_tag") or None
    train_prompts, heldout = split_heldout(list_prompts(session=session, tag=tag))
    if algorithm.needs_reward_model:
        data = [{"prompt": p.messages, "prompt_id": p.id} for p in train_prompts]
        if not data:
            raise InvalidInput("no prompts to train on", remedy="import_prompts")
    base_path, base_merge = _full_weights(session, settings, base, reward=False, role="base")
    reward_path, reward_merge = (
        _full_weights(session, settings, reward, reward=True, role="reward model") if reward else (None, None)
    )
    if data is not None:
        data_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
    settings.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    spec = TrainerSpec(
        run_id=stored_id(run),
        algorithm=algorithm.value,
        base=base_path,
        reward_model=reward_path,
        params=run.params,
        data=str(data_path),
        # Same filesystem as the final directory, so the rename into place is atomic.
        output_dir=str(settings.checkpoints_dir / f".tmp-run{run.id}-{uuid.uuid4().hex[:8]}"),
        work_dir=str(rdir / "trainer"),
        progress=str(rdir / "progress.jsonl"),
        result=str(rdir / "result.json"),
        stop=str(rdir / "STOP"),
        eval_prompts=[p.messages for p in heldout] if algorithm is not Algorithm.reward else [],
        merges=[m for m in (base_merge, reward_merge) if m is not None],
    )
    spec.write(rdir / "spec.json")
    return spec


def _full_weights(
    session, settings: Settings, ckpt: Checkpoint, *, reward: bool, role: str
) -> tuple[str, MergeStep | None]:
    """The folder TRL loads for a checkpoint: its own, or (an adapter) its merged copy, with the step
    the trainer takes to make it."""
    if not ckpt.adapter:
        return ckpt.path, None
    reason = unmergeable_reason(ckpt)
    if reason:
        raise InvalidInput(
            f"checkpoint {ckpt.id} ({ckpt.name}) cannot be the {role} of a run: {reason}; "
            f"train from its base, checkpoint {ckpt.base_checkpoint_id}, instead"
        )
    dest = str(merged_dir(settings, ckpt))
    return dest, MergeStep(dest=dest, ref=model_ref(session=session, checkpoint=ckpt), reward=reward)


def trainer_command(spec_path: Path, spec: TrainerSpec) -> list[str]:
    """The trainer's command line: plain Python, or ``accelerate launch`` over several processes."""
    params, _ = spec.typed_params()
    if params.num_processes <= 1:
        return [sys.executable, "-m", "rlhf.training.child", str(spec_path)]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(params.num_processes)]
    if params.accelerate_config:
        cmd += ["--config_file", params.accelerate_config]
    else:
        # Without a config accelerate starts N processes only where it sees N GPUs: on a CPU it
        # would train in one process, on half the global batch. --multi_gpu always starts N ranks
        # (torchrun; on a CPU they join over gloo), on a free port so runs side by side never clash.
        cmd += ["--multi_gpu", "--main_process_port", "0"]
    return cmd + ["-m", "rlhf.training.child", str(spec_path)]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """If the worker is killed, its trainer must not live on as an orphan holding a GPU."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


class _Tail:
    """Reads the lines appended to the trainer's progress file since the last call."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0
        self.last: RunProgress | None = None  # the latest progress reported, and whether its phase was sent
        self.phase_sent = False

    def read(self) -> list[RunProgress]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [RunProgress.from_json(line) for line in complete.splitlines() if line.strip()]


def _failure_reason(log_path: Path, returncode: int) -> str:
    tail = log_path.read_text(errors="replace").strip().splitlines()[-40:] if log_path.exists() else []
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed: out of memory, or stopped by an operator)" if name == "SIGKILL" else ""
        head = f"trainer process died with {name}{hint}"
    else:
        head = f"trainer process exited with code {returncode}"
    # The last exception line says what went wrong; the tail helps whoever digs further.
    last_error = next((line for line in reversed(tail) if "Error" in line or "Exception" in line), "")
    causes = _rank_causes(log_path) if "ChildFailedError" in last_error else []
    if causes:
        # torchrun's summary names only a signal or an exit code: what the failed rank itself said
        # (an abort's message, its Python stack) is further up the log.
        tail = [*causes, "…", *tail]
    if any("couldn't connect to" in line or "offline mode" in line for line in tail):
        head += (
            " (a model id could not be fetched from the hub: register a local model directory as a "
            "checkpoint, or point RLHF_BASE_MODEL at one)"
        )
    return head + (f": {last_error.strip()}" if last_error else "") + ("\n\n" + "\n".join(tail) if tail else "")


# What a rank prints when it dies in native code or a Python exception escapes it.
_RANK_CAUSE = re.compile(
    r"terminate called|what\(\):|Fatal Python error|Current thread|^\s*File \"|\[rank\d+\]:.*(Error|Exception)"
)


def _rank_causes(log_path: Path, limit: int = 30) -> list[str]:
    """The first lines in which a rank said why it died, before torchrun's summary."""
    lines = log_path.read_text(errors="replace").splitlines()
    end = next((i for i, line in enumerate(lines) if "ChildFailedError" in line), len(lines))
    # The launcher's own traceback, which ends in that line, is not a rank's.
    end = max((i for i, line in enumerate(lines[:end]) if line.startswith("Traceback")), default=end)
    return [line for line in lines[:end] if _RANK_CAUSE.search(line)][:limit]


def execute_run(run_id: int, settings: Settings | None = None) -> JobStatus | None:
    """Claim and train one run; returns its final status, or None if it was not ours to run."""
    settings = settings or get_settings()
    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as session:
        run = runs_svc.get_run(session=session, run_id=run_id)
        if run.status is not JobStatus.queued:
            log.info("run %s is %s; nothing to do", run_id, run.status.value)
            return None
        if not runs_svc.claim_run(session=session, run_id=run_id):
            return None
        try:
            spec = _prepare(session, settings, run)
        except RLHFError as exc:
            runs_svc.finish_run(session=session, run_id=run_id, status=JobStatus.failed, error=str(exc))
            return JobStatus.failed
    return _train(run_id, spec, settings, engine)


def _train(run_id: int, spec: TrainerSpec, settings: Settings, engine) -> JobStatus:
    rdir = run_dir(settings, run_id)
    log_path = rdir / "train.log"
    tail = _Tail(Path(spec.progress))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    cmd = trainer_command(rdir / "spec.json", spec)
    log.info("run %s: starting trainer: %s", run_id, " ".join(cmd))
    with log_path.open("wb") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        stop_sent_at = None
        while True:
            try:
                returncode = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            cancel = _report(engine, run_id, tail)
            if cancel and stop_sent_at is None:
                Path(spec.stop).touch()  # ask nicely: the trainer stops between steps
                stop_sent_at = time.monotonic()
            elif stop_sent_at is not None and time.monotonic() - stop_sent_at > STOP_GRACE_S:
                os.killpg(proc.pid, signal.SIGKILL)
    _report(engine, run_id, tail)
    status = _finish(run_id, spec, settings, engine, returncode, log_path)
    if status is JobStatus.succeeded:
        _merge_for_engines(engine, settings, run_id)
    return status


def _finish(run_id: int, spec: TrainerSpec, settings: Settings, engine, returncode: int, log_path: Path) -> JobStatus:
    """The run's end once its trainer has exited: a registered checkpoint, or the reason it has none."""
    output_dir = Path(spec.output_dir)
    result_path = Path(spec.result)
    with db.session_scope(engine) as session:
        run = runs_svc.get_run(session=session, run_id=run_id)
        if run.status is not JobStatus.running:
            # Reaped while this worker could not report: the recorded failure stands.
            shutil.rmtree(output_dir, ignore_errors=True)
            log.warning("run %s was marked %s while training; its output is discarded", run_id, run.status.value)
            return run.status
        if returncode == 0 and result_path.exists() and not run.cancel_requested:
            metrics = json.loads(result_path.read_text())
            return _register(session, settings, run, output_dir, metrics)
        shutil.rmtree(output_dir, ignore_errors=True)
        if run.cancel_requested:
            runs_svc.finish_run(
                session=session, run_id=run_id, status=JobStatus.cancelled, error="cancelled while training"
            )
            return JobStatus.cancelled
        runs_svc.finish_run(
            session=session, run_id=run_id, status=JobStatus.failed, error=_failure_reason(log_path, returncode)
        )
        return JobStatus.failed


def _merge_for_engines(engine, settings: Settings, run_id: int) -> None:
    """A LoRA policy that starts serving needs a merged copy before an engine can answer as it: its
    merge job is stored and run here, in this worker, so the arena battles it soon and no battle
    waits on it. A failure is recorded on the merge job (the arena says so), not on the run."""
    with db.session_scope(engine) as session:
        run = runs_svc.get_run(session=session, run_id=run_id)
        ckpt = session.get(Checkpoint, run.output_checkpoint_id) if run.output_checkpoint_id else None
        job = serving_copy_job(session=session, settings=settings, checkpoint=ckpt) if ckpt else None
        job_id = job.id if job is not None and job.status is JobStatus.queued else None
    if job_id is not None and ckpt is not None:  # a job is made only for a checkpoint
        status = execute_merge_job(job_id, settings)
        log.info(
            "run %s: checkpoint %s serves; merge job %s for inference engines: %s",
            run_id,
            ckpt.id,
            job_id,
            status.value if status else "taken by another worker",
        )


def _report(engine, run_id: int, tail: _Tail) -> bool:
    """Copy new progress lines into the run; returns True when a cancel was requested.

    Once the last step is logged the trainer saves and evaluates the new checkpoint, which
    takes a while and logs nothing: the progress then says ``phase: evaluating``.
    """
    with db.session_scope(engine) as session:
        lines = tail.read()
        for line in lines:
            runs_svc.log_step(session=session, run_id=run_id, step=line.step, values=line.to_dict())
        progress = None
        if lines:
            progress = tail.last = lines[-1]
        elif tail.last and not tail.phase_sent and tail.last.training_done:
            progress, tail.phase_sent = tail.last.now_evaluating(), True
        return runs_svc.heartbeat(session=session, run_id=run_id, progress=progress)


def _register(session, settings: Settings, run: TrainingRun, output_dir: Path, metrics: dict) -> JobStatus:
    final = final_dir(settings, run)
    if final.exists():
        shutil.rmtree(final)  # an earlier attempt renamed but never registered
    os.replace(output_dir, final)
    kind = CheckpointKind.reward if run.algorithm is Algorithm.reward else CheckpointKind.policy
    # An adapter run's folder applies over the run's base checkpoint (named by id, see register_checkpoint).
    ckpt = register_checkpoint(
        session=session,
        path=str(final),
        name=final.name,
        kind=kind,
        serve=run.serve_on_success and kind is CheckpointKind.policy,
        parent_id=run.base_checkpoint_id,
        run_id=run.id,
        metrics={**metrics, "snapshot_hash": run.snapshot_hash},
        base_checkpoint_id=run.base_checkpoint_id,
    )
    session.flush()
    try:
        runs_svc.finish_run(
            session=session,
            run_id=stored_id(run),
            status=JobStatus.succeeded,
            metrics=metrics,
            output_checkpoint_id=ckpt.id,
        )
    except Conflict:
        # Reaped or cancelled in the moment since it was read: that ending stands, and the folder,
        # whose row is rolled back with it, must not stay behind unregistered.
        session.rollback()
        shutil.rmtree(final, ignore_errors=True)
        status = runs_svc.get_run(session=session, run_id=stored_id(run)).status
        log.warning(
            "run %s ended as %s while its checkpoint was registered; its output is discarded", run.id, status.value
        )
        return status
    return JobStatus.succeeded

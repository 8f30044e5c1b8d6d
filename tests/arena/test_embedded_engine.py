"""The embedded engine as the app runs it: started once when first needed, reused, stopped with the app,
and after being killed mid-answer, an error for that battle and a working next one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from feedback_ui.app import create_app
from rlhf.services.checkpoints import register_checkpoint, retire_checkpoint
from tests.arena.conftest import HELLO, RATER

pytestmark = pytest.mark.integration


def _loads(log_path) -> int:
    """Model loads the engine logged (transformers serve logs "Loading <model>" once per load)."""
    return sum(1 for line in log_path.read_text(errors="replace").splitlines() if "] Loading " in line)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_one_engine_serves_ten_battles_on_two_checkpoints_and_stops_with_the_app(settings, arena_world, monkeypatch):
    monkeypatch.setattr(settings, "arena_battles_per_minute", 100)
    app = create_app(settings, start_worker=False)
    inference = app.state.web.inference
    assert inference.embedded and inference.engine.pid is None  # nothing started before it is needed
    with TestClient(app) as client:
        for i in range(10):
            r = client.post(
                "/api/arena", json={"messages": [{"role": "user", "content": f"Question {i}?"}]}, headers=RATER
            )
            assert r.status_code == 201, r.text
        engine = inference.engine
        pid = engine.pid
        assert engine.starts == 1 and engine.alive()
        assert _loads(engine.log_path) == 2  # alpha and beta, each loaded once over ten battles
    # The app stopped: so did its engine.
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.2)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_killed_mid_stream_the_rater_sees_an_error_and_the_next_battle_works(
    settings, arena_world, session, monkeypatch, tiny_model_dir, tmp_path
):
    # Checkpoints that write at least 400 tokens (their generation_config says so), so the engine
    # is still answering when it is killed at the first delta.
    for name in ("wordy-a", "wordy-b"):
        shutil.copytree(tiny_model_dir, tmp_path / name)
        config = json.loads((tmp_path / name / "generation_config.json").read_text())
        (tmp_path / name / "generation_config.json").write_text(json.dumps({**config, "min_new_tokens": 400}))
        register_checkpoint(session=session, path=str(tmp_path / name), name=name, serve=True)
    for ckpt in arena_world["checkpoints"]:  # after the wordy ones serve: the last policy cannot retire
        retire_checkpoint(session=session, checkpoint_id=ckpt.id)
    session.commit()
    monkeypatch.setattr(settings, "arena_max_new_tokens", 500)
    app = create_app(settings, start_worker=False)
    engine = app.state.web.inference.engine
    with TestClient(app) as client:
        assert client.post("/api/arena", json={"messages": HELLO}, headers=RATER).status_code == 201
        first_pid = engine.pid

        with client.stream("POST", "/api/arena", json={"messages": HELLO, "stream": True}, headers=RATER) as r:
            lines = r.iter_lines()
            seen = []
            for line in lines:  # the first delta: the engine is answering now
                seen.append(line)
                if line.startswith("event: a") or line.startswith("event: b"):
                    os.kill(first_pid, signal.SIGKILL)
                    break
            rest = list(lines)
        events = [line[6:].strip() for line in seen + rest if line.startswith("event:")]
        detail = next(line for line in rest if line.startswith("data:") and "detail" in line)
        assert events[-1] == "error" and "done" not in events
        assert "embedded inference engine" in detail
        # A rater's earlier vote is kept whatever the engine does.
        from sqlmodel import func, select

        from rlhf.models import Comparison, Vote

        battles = session.exec(select(func.count()).select_from(Comparison)).one()
        assert battles == 1
        again = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
        assert again.status_code == 201, again.text
        assert engine.pid != first_pid and engine.starts == 2
        vote = client.post(
            "/api/votes", json={"comparison_id": again.json()["comparison_id"], "choice": "a"}, headers=RATER
        )
        assert vote.status_code == 201
        session.expire_all()
        assert session.exec(select(func.count()).select_from(Vote)).one() == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_lora_checkpoint_is_served_as_its_merged_copy_made_once(
    settings, arena_world, session, tiny_copies, tmp_path, monkeypatch
):
    # transformers serve cannot load an adapter folder: the engine gets a merged copy, made once, by a worker.
    from rlhf.jobs.embedded import work_once
    from rlhf.services.merges import serving_copy_job
    from tests.adapters import make_adapter

    alpha, beta = arena_world["checkpoints"]
    adapter_dir = make_adapter(Path(tiny_copies[0]), tmp_path / "lora")
    lora = register_checkpoint(
        session=session, path=str(adapter_dir), name="lora", serve=True, base_checkpoint_id=alpha.id
    )
    retire_checkpoint(session=session, checkpoint_id=beta.id)
    retire_checkpoint(session=session, checkpoint_id=alpha.id)  # a retired base still loads
    assert serving_copy_job(session=session, settings=settings, checkpoint=lora) is not None
    session.commit()
    assert work_once(settings) == 1  # the embedded worker's pass: the merge job
    merged = settings.data_dir / "merged" / f"checkpoint-{lora.id}"
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    made_at = (merged / "config.json").stat().st_mtime_ns

    def no_merging(*_args, **_kwargs):
        raise AssertionError("a model was merged inside a web request")

    monkeypatch.setattr("rlhf.modeling.adapters.merge_in_child", no_merging)
    app = create_app(settings, start_worker=False)
    engine = app.state.web.inference.engine
    with TestClient(app) as client:
        for _ in range(2):
            battle = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
            assert battle.status_code == 201, battle.text
        assert (merged / "config.json").stat().st_mtime_ns == made_at, "the merged copy was made again"
        log = engine.log_path.read_text(errors="replace")
    assert str(merged) in log and str(adapter_dir) not in log
    assert _loads(engine.log_path) == 1  # one checkpoint, loaded once for four answers

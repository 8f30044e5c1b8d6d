"""Snapshots stored by earlier code still load, verify, round-trip and train on the same rows.

tests/data/stored_snapshots.json holds, for the fixed data of :mod:`tests.fixed_votes`,
snapshots exactly as the code before typed snapshots stored them on a run (majority;
per-vote with ties kept; labels ``both``; machine labels of one source with flagged
raters kept; an SFT snapshot of demonstrations; and the first stored format, four keys
and per-vote rows), with the data file the trainer was given for each. Never regenerate
it: it stands for runs already in databases.
"""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlmodel import select

from rlhf.errors import Conflict, InvalidInput
from rlhf.jobs.training import _prepare
from rlhf.models import Algorithm, Demonstration, TrainingRun
from rlhf.services.dataset import Snapshot, snapshot_rows
from rlhf.services.snapshots import PreferenceSnapshot, SFTSnapshot, labels_name, parse_labels, parse_snapshot
from tests import fixed_votes

STORED = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "stored_snapshots.json").read_text(encoding="utf-8")
)
WRITTEN_BY_THE_CODE = [name for name in STORED if name != "first_format"]  # as stored, every field


@pytest.fixture
def db_url(fresh_db_url):
    return fresh_db_url  # ids from 1, as the stored snapshots have them


@pytest.fixture
def session(committed_session):
    return committed_session


def _run(session, algorithm: Algorithm, snapshot: dict) -> TrainingRun:
    run = TrainingRun(
        algorithm=algorithm, base_checkpoint_id=1, params={}, snapshot=snapshot, snapshot_hash=snapshot["hash"]
    )
    session.add(run)
    session.flush()
    return run


def _trainer_data(session, settings, run: TrainingRun) -> str:
    text = Path(_prepare(session, settings, run).data).read_text(encoding="utf-8")
    if run.algorithm is Algorithm.sft:
        return text
    # Rows have carried the votes' strength since these were stored: the one key added, at the end.
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(list(r)[-1] == "strength" for r in rows)
    return "".join(json.dumps({k: v for k, v in r.items() if k != "strength"}, ensure_ascii=False) + "\n" for r in rows)


def test_stored_snapshots_load_verify_and_train_on_the_same_rows(session, settings):
    fixed_votes.build(session)
    for name, stored in STORED.items():
        snapshot = stored["snapshot"]
        sft = snapshot.get("aggregate") == "demonstrations"
        run = _run(session, Algorithm.sft if sft else Algorithm.dpo, snapshot)
        loaded = Snapshot.of(run)
        assert isinstance(loaded, SFTSnapshot if sft else PreferenceSnapshot), name
        assert (loaded.rows, loaded.hash) == (snapshot["rows"], snapshot["hash"]), name
        if not sft:
            assert len(snapshot_rows(session=session, snapshot=loaded)) == snapshot["rows"], name
        assert _trainer_data(session, settings, run) == stored["trainer_data"], name
        if "sft_trainer_data" in stored:
            sft_run = _run(session, Algorithm.sft, snapshot)
            assert _trainer_data(session, settings, sft_run) == stored["sft_trainer_data"], name


@pytest.mark.parametrize("name", WRITTEN_BY_THE_CODE)
def test_stored_snapshots_round_trip(name):
    stored = STORED[name]["snapshot"]
    assert Snapshot.model_validate(stored).model_dump(mode="json") == stored


def test_the_first_stored_format_reads_as_per_vote_rows():
    loaded = Snapshot.model_validate(STORED["first_format"]["snapshot"])
    assert (loaded.aggregate, loaded.ties) == ("none", "drop")
    assert Snapshot.model_validate(loaded.model_dump(mode="json")) == loaded


def test_stored_snapshots_read_as_their_kind_with_labels_as_vote_kinds():
    kinds = {name: parse_snapshot(stored["snapshot"]) for name, stored in STORED.items()}
    assert isinstance(kinds["sft"], SFTSnapshot) and kinds["sft"].demonstration_ids == [1, 2]
    assert all(isinstance(s, PreferenceSnapshot) for name, s in kinds.items() if name != "sft")
    assert kinds["labels_both"].labels == {"human", "machine"}
    assert kinds["machine_queue_only"].labels == {"machine"} and kinds["machine_queue_only"].sources == ["queue"]
    assert kinds["majority"].labels == kinds["first_format"].labels == {"human"}
    assert kinds["none_ties_keep"].ties == "keep" and kinds["none_ties_keep"].aggregate == "none"
    assert Snapshot.model_validate(STORED["sft"]["snapshot"]) == kinds["sft"]  # the base reads either kind


@pytest.mark.parametrize(
    "change",
    [{"surprise": 1}, {"ties": "maybe"}, {"aggregate": "mean"}, {"labels": "robots"}, {"labels": ["human", "oracle"]}],
)
def test_a_snapshot_has_only_its_declared_fields_and_values(change):
    with pytest.raises(ValidationError):
        parse_snapshot({**STORED["majority"]["snapshot"], **change})
    with pytest.raises(ValidationError):
        parse_snapshot({**STORED["sft"]["snapshot"], "sources": ["queue"]})  # an SFT snapshot has no sources


def test_labels_are_a_set_of_vote_kinds_named_as_before():
    assert parse_labels("both") == parse_labels(["machine", "human"]) == {"human", "machine"}
    assert [labels_name(parse_labels(x)) for x in ("human", "machine", "both")] == ["human", "machine", "both"]
    for bad in ("robots", "", [], ["human", "robot"], None):
        with pytest.raises(InvalidInput, match="labels must be one of human, machine, judge, both, all"):
            parse_labels(bad)
    snap = parse_snapshot({**STORED["labels_both"]["snapshot"], "labels": ["machine", "human"]})
    assert snap.model_dump(mode="json") == STORED["labels_both"]["snapshot"]


def test_an_sft_snapshot_is_verified_by_its_hash_before_training(session, settings):
    fixed_votes.build(session)
    snapshot = STORED["sft"]["snapshot"]
    demo = session.exec(select(Demonstration).where(Demonstration.id == snapshot["demonstration_ids"][0])).one()
    demo.text = "edited after the snapshot"
    session.add(demo)
    session.commit()
    with pytest.raises(Conflict, match="hash mismatch"):
        _prepare(session, settings, _run(session, Algorithm.sft, snapshot))

"""A run's data: frozen in the request that creates it, built into rows by its worker, streamed to files."""

import json

import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from rlhf.errors import Conflict
from rlhf.models import Response, SnapshotVote
from rlhf.services import export_files
from rlhf.services.dataset import export, take_snapshot
from rlhf.services.rating import undo_vote
from rlhf.services.run_data import build_snapshot, write_run_rows
from rlhf.services.runs import create_run, held_vote_ids
from rlhf.services.votes import record_vote
from tests import factories


def _held(session, run_id):
    return set(session.exec(select(SnapshotVote.vote_id).where(SnapshotVote.run_id == run_id)))


def test_a_run_freezes_the_committed_votes_and_its_worker_builds_the_rows(session):
    rater, other = factories.user(session), factories.user(session, "bob")
    comps = factories.comparisons(session, [("a0", "b0"), ("a1", "b1"), ("a2", "b2")], serve=True)
    kept = record_vote(session=session, rater=rater, comparison_id=comps[0].id, choice="a", as_shown=False).vote
    tie = record_vote(session=session, rater=rater, comparison_id=comps[1].id, choice="tie", as_shown=False).vote
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    expected = take_snapshot(session=session)  # what a snapshot taken in one go would hold now
    record_vote(session=session, rater=other, comparison_id=comps[2].id, choice="b", as_shown=False)

    # The request froze both votes (the tie too: it is only dropped when the rows are made) and
    # nothing after it; until the rows are built, undo refuses both.
    assert _held(session, run.id) == {kept.id, tie.id} and run.snapshot["votes"] == 2
    assert run.snapshot["hash"] is None and run.snapshot_hash is None
    with pytest.raises(Conflict, match=f"run {run.id}"):
        undo_vote(session=session, rater=rater, vote_id=tie.id, window_s=3600)

    built = build_snapshot(session=session, run=run)
    # Built: the run holds exactly the votes it trains on, and the tie is free again.
    assert (built.rows, built.vote_count) == (1, 1) and run.snapshot_hash == built.hash
    assert held_vote_ids(session=session, run_id=run.id) == [kept.id]
    undo_vote(session=session, rater=rater, vote_id=tie.id, window_s=3600)
    # The same rows as a snapshot taken in one go when the run was created; the later vote is not in them.
    assert (built.hash, built.vote_ids or [kept.id]) == (expected.hash, expected.vote_ids)
    assert build_snapshot(session=session, run=run).hash == built.hash  # a second build checks, and agrees


def test_the_data_file_is_the_rows_and_a_changed_pair_fails_the_check(session, tmp_path):
    rater = factories.user(session)
    comps = factories.comparisons(session, [("a0", "b0"), ("a1", "b1")], serve=True)
    for comp, choice in zip(comps, ["a", "b"]):
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice=choice, as_shown=False)
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    path = tmp_path / "data.jsonl"
    write_run_rows(session=session, run=run, path=path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [("a0", "b0"), ("b1", "a1")]

    response = session.exec(select(Response).where(Response.text == "a0")).one()
    response.text = "edited"
    session.add(response)
    session.commit()
    again = tmp_path / "again.jsonl"
    with pytest.raises(Conflict, match="hash mismatch"):
        write_run_rows(session=session, run=run, path=again)
    assert not again.exists() and not list(tmp_path.glob(".again*"))  # no partial file under any name


def test_an_interrupted_export_leaves_no_file_under_its_name(session, tmp_path, monkeypatch):
    rater = factories.user(session)
    comps = factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(3)])
    for comp in comps:
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    target = tmp_path / "prefs.jsonl"
    target.write_text("the previous export\n")

    def rows():
        yield {"prompt": "one"}
        raise OSError("disk full")

    for fmt in ("jsonl", "parquet"):
        with pytest.raises(OSError, match="disk full"):
            export_files.write_stream(rows(), target, fmt)
        assert target.read_text() == "the previous export\n"  # untouched, not half replaced
        assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl"]  # no temporary left


def test_parquet_written_in_chunks_keeps_every_column_and_its_type(session, tmp_path, monkeypatch):
    """A column absent from the first chunk (no tie until a later row) still gets its real type."""
    rater = factories.user(session)
    comps = factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(5)])
    for comp, choice in zip(comps, ["a", "b", "a", "tie", "b"]):
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice=choice, as_shown=False)
    monkeypatch.setattr(export_files, "CHUNK", 2)
    rows = [{"x": 1}, {"x": 2}, {"x": 3, "tie": True}, {"x": 4, "tie": False}, {"x": 5}]
    export_files.write_stream(rows, tmp_path / "mixed.parquet")
    table = pq.read_table(tmp_path / "mixed.parquet")
    assert table.column_names == ["x", "tie"] and str(table.schema.field("tie").type) == "bool"
    assert table.column("tie").to_pylist() == [None, None, True, False, None]
    assert pq.ParquetFile(tmp_path / "mixed.parquet").num_row_groups == 3  # written a chunk at a time

    assert export(session=session, path=tmp_path / "prefs.parquet", ties="keep") == 5
    assert export(session=session, path=tmp_path / "prefs.jsonl", ties="keep") == 5
    lines = [json.loads(line) for line in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    assert pq.read_table(tmp_path / "prefs.parquet").to_pylist() == [
        {k: row.get(k) for k in pq.read_table(tmp_path / "prefs.parquet").column_names} for row in lines
    ]

"""``rlhf export --labels``: whose labels make the exported pairs, as for a run's snapshot."""

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from rlhf.errors import InvalidInput
from rlhf.models import Choice
from rlhf.services.machine_labels import record_machine_labels
from rlhf.services.votes import record_vote
from rlhf_cli.main import app
from tests import factories


def _export(tmp_path, *args: str):
    out = tmp_path / f"pairs-{len(list(tmp_path.iterdir()))}.jsonl"
    result = CliRunner().invoke(app, ["export", str(out), *args])
    if result.exception:
        return result, []
    return result, [json.loads(line) for line in out.read_text().splitlines()]


def test_export_labels_chooses_people_machine_or_both(session, tmp_path):
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(4)], target_votes=3)
    rater = factories.user(session)
    for comp in comps[:2]:
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    # The machine labels three pairs, one of which a person voted on too (and disagreed).
    record_machine_labels(session=session, reward_checkpoint_id=1, labels=[(c.id, Choice.b, 0.95) for c in comps[1:]])
    session.commit()

    result, human = _export(tmp_path)
    assert result.exit_code == 0 and "wrote 2 preference pairs" in result.output
    assert {r["comparison_id"] for r in human} == {comps[0].id, comps[1].id}
    assert all(r.get("label_source") != "machine" for r in human)
    _, machine = _export(tmp_path, "--labels", "machine")
    assert [r["comparison_id"] for r in machine] == [c.id for c in comps[1:]]
    assert all(r["label_source"] == "machine" and r["label_p"] == 0.95 for r in machine)
    assert machine[0]["chosen"][0]["content"] == "y1"
    _, both = _export(tmp_path, "--labels", "both")
    by_id = {r["comparison_id"]: r for r in both}
    assert set(by_id) == {c.id for c in comps}
    assert by_id[comps[1].id]["chosen"][0]["content"] == "x1"  # the person's vote wins where both labelled
    # In Parquet too, every row keeps its keys: a person's row comes first and has no label_source, yet the
    # machine rows' label_source is a column (null for people's rows).
    out = tmp_path / "both.parquet"
    assert CliRunner().invoke(app, ["export", str(out), "--labels", "both"]).exit_code == 0
    table = pq.read_table(out).to_pylist()
    assert [r["comparison_id"] for r in table] == [r["comparison_id"] for r in both]
    assert [r["label_p"] for r in table] == [r.get("label_p") for r in both]
    assert "label_source" not in both[0]
    assert [r["label_source"] for r in table] == [r.get("label_source") for r in both]

    bad, _ = _export(tmp_path, "--labels", "robots")
    assert isinstance(bad.exception, InvalidInput)
    assert "labels must be one of human, machine, judge, both, all" in str(bad.exception)
    sft, _ = _export(tmp_path, "--kind", "sft", "--labels", "machine")
    assert isinstance(sft.exception, InvalidInput) and "demonstrations are written by people" in str(sft.exception)


def test_export_margins_writes_trl_margin_on_every_row_and_parquet_keeps_strength_typed(session, tmp_path):
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(3)])
    rater = factories.user(session)
    for comp, strength in zip(comps, (None, 2, 3), strict=True):
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", strength=strength, as_shown=False)
    session.commit()
    _, plain = _export(tmp_path)
    assert [r["strength"] for r in plain] == [None, 2, 3] and all("margin" not in r for r in plain)
    result, rows = _export(tmp_path, "--margins")
    assert result.exit_code == 0 and [r["margin"] for r in rows] == [0.0, 2 / 3, 1.0]
    # The first row says no strength, yet Parquet's strength column is integers, not nulls.
    out = tmp_path / "m.parquet"
    assert CliRunner().invoke(app, ["export", str(out), "--margins"]).exit_code == 0
    table = pq.read_table(out)
    assert str(table.schema.field("strength").type) == "int64" and table.column("strength").to_pylist() == [None, 2, 3]
    sft, _ = _export(tmp_path, "--kind", "sft", "--margins")
    assert isinstance(sft.exception, InvalidInput) and "--margins" in str(sft.exception)

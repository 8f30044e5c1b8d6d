"""Typed rows write exactly the dicts the export always wrote, and the trainer reads them back checked."""

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from rlhf.dataset_rows import PreferenceRow, SFTRow, read_preference_rows
from rlhf.errors import InvalidInput

GOLDEN = (Path(__file__).resolve().parent.parent / "data" / "export_golden.txt").read_text(encoding="utf-8")


def _lines(kind: str) -> list[str]:
    sections = re.split(r"^### (\S+).*\n", GOLDEN, flags=re.M)[1:]
    return [line for name, body in zip(sections[::2], sections[1::2]) if name == kind for line in body.splitlines()]


def test_every_golden_row_reads_as_its_type_and_writes_the_same_bytes():
    for kind, cls in (("export", PreferenceRow), ("export_sft", SFTRow)):
        lines = _lines(kind)
        assert lines
        for line in lines:
            assert json.dumps(cls.model_validate(json.loads(line)).model_dump(), ensure_ascii=False) == line


def test_a_row_is_per_vote_or_by_majority_never_both():
    row = json.loads(_lines("export")[0])  # by majority
    assert PreferenceRow.model_validate(row).held_vote_ids == row["vote_ids"]
    for bad in (
        {**row, "vote_id": 1},
        {k: v for k, v in row.items() if k != "agreement"},
        {**row, "label_source": "machine"},
        {**row, "colour": "red"},
    ):
        with pytest.raises(ValidationError):
            PreferenceRow.model_validate(bad)


def test_the_trainer_refuses_a_data_file_that_is_not_preference_rows(tmp_path):
    good = _lines("export")[:2]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(good) + "\n", encoding="utf-8")
    assert read_preference_rows(path) == [json.loads(x) for x in good]
    path.write_text(good[0] + "\n" + json.dumps({"prompt": [], "chosen": []}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 2: not a preference row"):
        read_preference_rows(path)

"""The export's bytes, pinned: key order, keys left out, number formats and unicode, per mode.

tests/data/export_golden.txt was written by the export as it was before rows became typed
(``PreferenceRow``/``SFTRow``), from the fixed data of :mod:`tests.fixed_votes`: one
section per mode (``### export aggregate=… ties=… labels=… [sources=…] rows=N`` or
``### export_sft rows=N``) followed by the file's exact bytes. No byte differs since but one
column added on purpose: ``strength`` at the end of every preference row (and a section with
``margins``). A change to this file changes what every consumer of an export reads, so make it
on purpose.
"""

import re
from pathlib import Path

import pytest

from rlhf.services.dataset import export
from rlhf.services.demonstrations import export_sft
from tests import fixed_votes

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "export_golden.txt"
HEADER = re.compile(rb"^### (export|export_sft)((?: \w+=[\w,]+)*) rows=(\d+)\n", re.M)


@pytest.fixture
def db_url(fresh_db_url):
    return fresh_db_url  # ids from 1, as the golden file has them


@pytest.fixture
def session(committed_session):
    return committed_session


def _sections() -> list[tuple[str, dict[str, str], int, bytes]]:
    text = GOLDEN.read_bytes()
    heads = list(HEADER.finditer(text))
    out = []
    for head, nxt in zip(heads, [*heads[1:], None]):
        options = dict(kv.split("=") for kv in head.group(2).decode().split())
        out.append(
            (head.group(1).decode(), options, int(head.group(3)), text[head.end() : nxt.start() if nxt else len(text)])
        )
    return out


def test_the_golden_file_covers_every_mode():
    modes = {(o.get("aggregate"), o.get("ties"), o.get("labels")) for kind, o, _, _ in _sections() if kind == "export"}
    assert modes >= {
        (a, t, lab) for a in ("majority", "none") for t in ("drop", "keep") for lab in ("human", "machine", "both")
    }
    assert any(kind == "export_sft" for kind, *_ in _sections())


def test_exported_bytes_are_the_golden_ones(session, tmp_path):
    fixed_votes.build(session)
    for i, (kind, options, rows, expected) in enumerate(_sections()):
        path = tmp_path / f"{i}.jsonl"
        if kind == "export_sft":
            n = export_sft(session=session, path=path)
        else:
            sources = options.pop("sources", None)
            margins = options.pop("margins", "false") == "true"
            n = export(
                session=session,
                path=path,
                sources=sources.split(",") if sources else None,
                margins=margins,
                **options,
            )
        assert (n, path.read_bytes()) == (rows, expected), f"{kind} {options}"

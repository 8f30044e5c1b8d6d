"""The generator of the bundled corpus is a development script, outside the package; it rewrites the files exactly."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ("demonstrations.jsonl", "prompts.jsonl", "heldout_prompts.jsonl")


def test_the_script_regenerates_the_shipped_files_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_corpus.py"), str(tmp_path)], check=True)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (ROOT / "rlhf" / "data" / name).read_bytes(), name
    assert not list((ROOT / "rlhf" / "data").glob("*.py"))  # the package ships the data, not its generator

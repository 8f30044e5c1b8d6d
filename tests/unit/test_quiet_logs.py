"""At the default log level, starting up and building the model print what matters, not library noise."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from rlhf.logging_setup import configure_logging
from rlhf import db
from rlhf.modeling.tiny import build_tiny_model
configure_logging(sys.argv[3])
db.migrate(f"sqlite:///{sys.argv[1]}/rlhf.db")
build_tiny_model(sys.argv[2], warmup_steps=3)
"""


def _run(tmp_path, level: str) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(tmp_path / f"tiny-{level}"), level],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                              "TOKENIZERS_PARALLELISM": "false"})
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def test_no_plugin_lines_progress_bars_or_trainer_dicts_at_info(tmp_path):
    text = _run(tmp_path, "INFO")
    assert "alembic.runtime.plugins" not in text
    assert "train_runtime" not in text
    assert "%|" not in text and "examples/s" not in text, text[-2000:]
    assert "Running upgrade" in text  # the migrations themselves still say what they do


def test_debug_still_shows_the_plugins(tmp_path):
    assert "alembic.runtime.plugins" in _run(tmp_path, "DEBUG")

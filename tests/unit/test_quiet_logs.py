"""At the default log level, starting up and building the model print what matters, not library noise."""

import logging
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
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(tmp_path / f"tiny-{level}"), level],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={
            "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
            "TOKENIZERS_PARALLELISM": "false",
        },
    )
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def test_no_plugin_lines_progress_bars_or_trainer_dicts_at_info(tmp_path):
    text = _run(tmp_path, "INFO")
    assert "alembic.runtime.plugins" not in text
    assert "train_runtime" not in text
    assert "%|" not in text and "examples/s" not in text, text[-2000:]


def test_a_new_database_opens_the_console_without_the_migration_log(tmp_path):
    text = _run(tmp_path, "INFO")
    assert "alembic" not in text and "Running upgrade" not in text, text[-2000:]


def test_debug_still_shows_the_plugins_and_every_migration(tmp_path):
    text = _run(tmp_path, "DEBUG")
    assert "alembic.runtime.plugins" in text
    assert "Running upgrade" in text
    assert "database schema created at revision" in text


def test_upgrading_an_existing_database_says_so_in_one_line(tmp_path, caplog):
    from alembic import command

    from rlhf import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(db._alembic_config(url), "0004")
    alembic_level = logging.getLogger("alembic").level
    caplog.clear()
    with caplog.at_level(logging.INFO):
        db.migrate(url)
        db.migrate(url)  # already current: nothing at INFO
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.name for r in lines] == ["rlhf.db"], [r.getMessage() for r in lines]
    assert lines[0].getMessage().startswith("database schema upgraded from revision 0004 to ")
    assert logging.getLogger("alembic").level == alembic_level  # the quieting is undone afterwards

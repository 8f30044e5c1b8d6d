"""Structured logs: one JSON object per line, extras as keys, tracebacks inside the record."""

from __future__ import annotations

import json
import logging

import pytest

from rlhf.logging_setup import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_level_logger_message_and_extras(capsys):
    configure_logging("INFO", json=True)
    log = logging.getLogger("rlhf.test")
    log.info("run %s finished", 7, extra={"run_id": 7, "queue": "train"})
    log.debug("not shown at INFO")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("job failed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, "a multi-line traceback must stay one record"
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "rlhf.test"
    assert first["message"] == "run 7 finished" and first["run_id"] == 7 and first["queue"] == "train"
    assert first["timestamp"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_text_format_and_reconfiguring_replaces_the_handler(capsys):
    configure_logging("INFO", json=True)
    configure_logging("WARNING", json=False)
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("rlhf.test").warning("plain %s", "line")
    err = capsys.readouterr().err
    assert "WARNING rlhf.test: plain line" in err and not err.lstrip().startswith("{")


def test_values_json_cannot_hold_are_logged_as_text(capsys, tmp_path):
    configure_logging("INFO", json=True)
    logging.getLogger("rlhf.test").info("saved", extra={"path": tmp_path})
    assert json.loads(capsys.readouterr().err)["path"] == str(tmp_path)

"""Logging for every process (CLI, web, workers, trainer): plain lines, or JSON lines.

JSON lines (``RLHF_LOG_FORMAT=json``) are for deployments, where a log shipper reads a
container's stdout: one object per line, so a traceback or a multi-line message stays
one record, and fields passed with ``extra={"run_id": 3}`` become keys to filter on.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# Libraries that log every request, file lock or plugin set-up at INFO; their warnings still show
# (and at DEBUG, everything).
NOISY = ("httpx", "urllib3", "datasets", "filelock", "alembic.runtime.plugins")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot hold (a Path, a datetime) is logged as text, never dropped.
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str | int = "INFO", json: bool = False) -> None:
    """Configure the root logger once per process; calling it again replaces the previous setup.

    Logs go to stderr so commands that print results (``--json``) keep stdout clean.
    Uvicorn's and Celery's loggers propagate to the root, so they take the same format.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    quiet = root.getEffectiveLevel() > logging.DEBUG  # DEBUG shows everything
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    if quiet:
        _quiet_progress_bars()
    if json:
        # Uvicorn installs its own plain handlers on these; let them reach the JSON handler instead.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            lg = logging.getLogger(name)
            lg.handlers.clear()
            lg.propagate = True


def _quiet_progress_bars() -> None:
    """``datasets`` (a bar per map or filter) and the Hugging Face hub and transformers (a bar per
    model save) draw straight to stderr, bypassing logging; in a service's log they are noise,
    so they show only at DEBUG. The environment carries the choice into child processes (the
    trainer), whose output goes to the run's log."""
    import os

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

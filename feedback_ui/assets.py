"""The pages' own CSS and JavaScript: the files in ``feedback_ui/static``, where the app serves them, their URLs.

:func:`feedback_ui.app.create_app` mounts :data:`DIRECTORY` at :data:`MOUNT_PATH`, before the
UI takes ``/``; the page head links the files by :func:`url`. Not ``/static``: Gradio serves
its own files there (the fonts the stylesheet borrows among them). The files hold no
settings: what they need from Python (the vote buttons, class names) the page head hands
them as ``window.RLHF`` (:func:`feedback_ui.ui.render.page_head`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent / "static"
MOUNT_PATH = "/rlhf-static"


def url(name: str) -> str:
    """The URL of a static file, relative to the page, versioned by its content: a deploy that
    changes the file changes the URL, so a browser never runs a cached copy of the old one."""
    digest = hashlib.sha256((DIRECTORY / name).read_bytes()).hexdigest()[:12]
    return f"{MOUNT_PATH.lstrip('/')}/{name}?v={digest}"

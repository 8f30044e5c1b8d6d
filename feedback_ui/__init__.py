"""The web app: the REST API, the login page and (when present) the Gradio pages.

``create_app(settings)`` builds it; ``rlhf serve`` runs it under uvicorn.
"""

from feedback_ui.app import create_app

__all__ = ["create_app"]

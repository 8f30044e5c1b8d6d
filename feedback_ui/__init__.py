"""The web app: the REST API, the login page and (when present) the Gradio pages.

:func:`feedback_ui.app.create_app` builds it; ``rlhf serve`` runs it under uvicorn.
"""

"""Training as plain functions: data + base checkpoint + params in, a model directory and metrics out.

Nothing here imports the database, Celery or Gradio: the CLI, a test or a worker can
call these functions directly.
"""

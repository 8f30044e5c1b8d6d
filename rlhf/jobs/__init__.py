"""Jobs: what a worker (Celery or embedded) runs for a queued id, and how an id is queued."""

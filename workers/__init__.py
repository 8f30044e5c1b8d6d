"""Celery workers: thin tasks that take an id and call ``rlhf``."""

"""RLHF feedback loop: preferences collected from people, trained into the next checkpoint."""

__version__ = "0.1.0"

"""The inference engine: one OpenAI-compatible client, and the embedded engine the app manages.

Generation for the arena (and, when ``RLHF_INFERENCE_URL`` is set, for generation jobs) goes
to a server that speaks ``/v1/chat/completions``: vLLM or SGLang on GPUs, ``transformers
serve`` on a laptop. This package never loads a model itself.
"""

from rlhf.inference.client import ChatSampling, Completion, Inference, served_model_name

__all__ = ["ChatSampling", "Completion", "Inference", "served_model_name"]

"""PPO against a reward model, the project's own, split as TRL split its trainers.

- :mod:`rlhf.training.ppo.config`: :class:`PPOParams` (no torch: the web process validates it);
- :mod:`rlhf.training.ppo.losses`: GAE, the clipped losses, masks and whitening, pure tensors;
- :mod:`rlhf.training.ppo.trainer`: model loading, rollouts and the update loop, :func:`train_ppo`.

This package module imports none of them, so reading the config never loads torch.
"""

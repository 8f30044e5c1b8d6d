"""PPO: the loss arithmetic checked by hand, and one short end-to-end run on tiny random models."""

from __future__ import annotations

import math

import pytest
import torch

from rlhf.training.ppo.config import PPOParams
from rlhf.training.ppo.losses import (
    compute_gae,
    kl_estimate,
    masked_mean,
    masked_whiten,
    policy_loss,
    response_mask_after_eos,
    value_loss,
)
from rlhf.training.ppo.trainer import TrainingStopped, train_ppo

# --- GAE -------------------------------------------------------------------


def test_gae_matches_hand_computation():
    # One response of 3 tokens followed by one padding position; gamma=0.9, lam=0.8.
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])  # the 5.0 sits on padding and must be ignored
    values = torch.tensor([[0.5, 0.2, 0.4, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    advantages, returns = compute_gae(rewards, values, mask, gamma=0.9, lam=0.8)

    # delta_2 = 1.0 - 0.4                 = 0.6     (the episode ends: no next value)
    # delta_1 = 0.0 + 0.9*0.4 - 0.2       = 0.16
    # delta_0 = 0.0 + 0.9*0.2 - 0.5       = -0.32
    # A_2 = 0.6
    # A_1 = 0.16 + 0.9*0.8*0.6            = 0.592
    # A_0 = -0.32 + 0.9*0.8*0.592         = 0.10624
    expected_adv = torch.tensor([[0.10624, 0.592, 0.6, 0.0]])
    expected_ret = torch.tensor([[0.60624, 0.792, 1.0, 0.0]])  # A + V inside the mask
    torch.testing.assert_close(advantages, expected_adv)
    torch.testing.assert_close(returns, expected_ret)


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    advantages, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(returns, torch.tensor([[6.0, 5.0, 3.0], [4.0, 0.0, 0.0]]))
    torch.testing.assert_close(advantages, torch.tensor([[5.5, 4.5, 2.5], [3.0, 0.0, 0.0]]))


# --- response mask ---------------------------------------------------------

EOS, PAD = 2, 0


def test_response_mask_keeps_first_eos_and_drops_the_rest():
    ids = torch.tensor(
        [
            [5, 6, EOS, 7, 8],  # EOS in the middle: tokens after it are junk
            [5, 6, 7, 8, EOS],  # EOS as the last token
            [5, 6, 7, 8, 9],  # no EOS: the whole row counts
            [5, EOS, PAD, PAD, PAD],  # finished early, generate padded the rest
            [EOS, 5, EOS, 6, 7],  # stopping at once is a response too
        ]
    )
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 0],
            [1, 0, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(response_mask_after_eos(ids, EOS, PAD), expected)


def test_response_mask_when_pad_is_eos_or_there_are_several_eos_ids():
    ids = torch.tensor([[5, EOS, EOS, EOS], [5, 6, 3, EOS], [5, PAD, PAD, PAD]])
    # pad == eos: the first one is the EOS and stays.
    assert response_mask_after_eos(ids[:1], EOS, EOS).tolist() == [[True, True, False, False]]
    # token 3 is a second stop token (e.g. <|endoftext|> next to <|im_end|>).
    assert response_mask_after_eos(ids[1:2], [EOS, 3], PAD).tolist() == [[True, True, True, False]]
    # no EOS but padding: the padding is not part of the response.
    assert response_mask_after_eos(ids[2:], EOS, PAD).tolist() == [[True, False, False, False]]


# --- policy loss -----------------------------------------------------------


def _ratio_grad(ratio: float, advantage: float, cliprange: float = 0.2) -> tuple[float, float, float]:
    """Loss, clipfrac and d loss / d logprob for one token whose ratio to the old policy is ``ratio``."""
    old = torch.tensor([[0.0]])
    new = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, clipfrac = policy_loss(new, old, torch.tensor([[advantage]]), torch.ones(1, 1), cliprange)
    loss.backward()
    return float(loss.detach()), float(clipfrac), float(new.grad)


def test_policy_loss_gradient_vanishes_beyond_the_clip_in_the_helpful_direction():
    # Positive advantage, ratio already above 1+eps: no incentive to push further.
    loss, clipfrac, grad = _ratio_grad(1.5, advantage=2.0)
    assert grad == 0.0 and clipfrac == 1.0
    assert loss == pytest.approx(-2.0 * 1.2)
    # Negative advantage, ratio already below 1-eps: the same.
    loss, clipfrac, grad = _ratio_grad(0.5, advantage=-2.0)
    assert grad == 0.0 and clipfrac == 1.0
    assert loss == pytest.approx(2.0 * 0.8)


def test_policy_loss_keeps_the_gradient_inside_the_clip_and_when_correcting():
    # Inside [1-eps, 1+eps]: plain policy gradient, -A * ratio.
    loss, clipfrac, grad = _ratio_grad(1.1, advantage=2.0)
    assert clipfrac == 0.0
    assert grad == pytest.approx(-2.0 * 1.1)
    # Ratio above 1+eps but negative advantage: the unclipped (worse) term is used, so
    # the gradient still pulls the probability back down.
    loss, clipfrac, grad = _ratio_grad(1.5, advantage=-2.0)
    assert clipfrac == 0.0
    assert loss == pytest.approx(2.0 * 1.5)
    assert grad == pytest.approx(2.0 * 1.5)


def test_policy_loss_ignores_masked_tokens():
    new = torch.tensor([[0.1, 0.0, 7.0]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, _ = policy_loss(new, old, adv, mask, 0.2)
    assert float(loss) == pytest.approx(-(math.exp(0.1) + 1.0) / 2)


# --- value loss ------------------------------------------------------------


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    old = torch.tensor([[0.0, 0.0, 0.0]])
    new = torch.tensor([[0.5, 0.1, 0.5]], requires_grad=True)
    returns = torch.tensor([[1.0, 1.0, -1.0]])
    loss, clipfrac = value_loss(new, old, returns, torch.ones(1, 3), cliprange_value=0.2)
    # token 0: moved 0.5 towards the target; clipped to 0.2 -> error 0.64 > 0.25, clipped used
    # token 1: inside the clip -> 0.81 either way
    # token 2: moved away from the target -> unclipped 2.25 > clipped 1.44, unclipped used
    assert float(loss.detach()) == pytest.approx(0.5 * (0.64 + 0.81 + 2.25) / 3)
    assert float(clipfrac) == pytest.approx(1 / 3)
    loss.backward()
    assert new.grad[0, 0] == 0.0  # the clipped branch gives no gradient
    assert new.grad[0, 1] != 0.0 and new.grad[0, 2] != 0.0


# --- whitening, means, KL ---------------------------------------------------


def test_whitening_ignores_masked_positions():
    values = torch.tensor([[1.0, 2.0, 3.0, 1000.0], [4.0, 5.0, -1000.0, -1000.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    whitened = masked_whiten(values, mask)
    valid = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    expected = (valid - valid.mean()) / valid.std()  # unbiased std over the 5 valid values
    torch.testing.assert_close(whitened[mask.bool()], expected, rtol=1e-4, atol=1e-4)
    assert whitened[~mask.bool()].abs().sum() == 0


def test_masked_mean_and_kl_estimate():
    values = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert float(masked_mean(values, mask)) == pytest.approx(3.0)
    torch.testing.assert_close(masked_mean(values, mask, dim=1), torch.tensor([2.0, 5.0]))
    logp, ref = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-2.0, -1.0, -0.5])
    kl = kl_estimate(logp, ref)
    assert (kl >= 0).all() and float(kl[2]) == 0.0


# --- end to end -------------------------------------------------------------

WORDS = "hello hi yes no good bad the a cat dog sun rain please thanks what is why".split()
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _tokenizer(path, words=WORDS):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials + ["user", "assistant", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(path)
    return tokenizer


def _tiny_models(tmp_path, reward_words=WORDS):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    policy_dir, reward_dir = tmp_path / "policy", tmp_path / "reward"
    tokenizer = _tokenizer(policy_dir)
    _tokenizer(reward_dir, reward_words)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        num_labels=1,
    )
    torch.manual_seed(0)
    policy = LlamaForCausalLM(config)
    policy.generation_config = GenerationConfig(
        do_sample=True, top_k=7, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    policy.save_pretrained(policy_dir)
    LlamaForSequenceClassification(config).save_pretrained(reward_dir)
    return policy_dir, reward_dir


PROMPTS = [
    [{"role": "user", "content": "hello what is the sun"}],
    [
        {"role": "user", "content": "why rain"},
        {"role": "assistant", "content": "the rain"},
        {"role": "user", "content": "please why"},
    ],
    [{"role": "user", "content": "a cat or a dog"}],
]


def _params(**overrides) -> PPOParams:
    base = dict(
        steps=2,
        batch_size=4,
        mini_batch_size=2,
        num_ppo_epochs=2,
        max_completion_length=6,
        max_prompt_length=8,
        eval_num_prompts=2,
        eval_samples_per_prompt=2,
        seed=3,
    )
    return PPOParams(**(base | overrides))


def test_train_ppo_end_to_end_on_tiny_random_models(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    policy_dir, reward_dir = _tiny_models(tmp_path)
    logs: list[dict] = []
    out = tmp_path / "out"
    metrics = train_ppo(
        policy_path=str(policy_dir),
        reward_model_path=str(reward_dir),
        prompts=PROMPTS,
        output_dir=str(out),
        params=_params(),
        on_log=logs.append,
    )

    assert metrics["updates"] == 2
    assert all(math.isfinite(v) for v in metrics.values())
    updates = [r for r in logs if r["step"] > 0]
    assert [r["step"] for r in updates] == [1, 2]
    for record in updates:
        for key in ("policy_loss", "value_loss", "score", "kl", "entropy", "clipfrac", "response_length", "seconds"):
            assert math.isfinite(record[key]), key
        assert record["kl"] >= 0
        assert 1 <= record["response_length"] <= 6
    assert "eval_score" in logs[0] and "eval_score" in updates[-1]

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == len(AutoTokenizer.from_pretrained(out))
    # The checkpoint keeps its own generation defaults, not the ones PPO sampled with.
    assert GenerationConfig.from_pretrained(out).top_k == 7
    # The policy moved away from where it started.
    start = AutoModelForCausalLM.from_pretrained(policy_dir)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), start.parameters(), strict=True))


def test_train_ppo_with_lora_a_foreign_reward_tokenizer_and_stop(tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    # The reward model numbers its words differently: it must score re-tokenised text,
    # and the value model must start from the policy checkpoint instead.
    policy_dir, reward_dir = _tiny_models(tmp_path, reward_words=WORDS[::-1])
    loaded: list[str] = []

    class Recording:
        @staticmethod
        def from_pretrained(path, **kwargs):
            loaded.append(str(path))
            return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)

    monkeypatch.setattr("rlhf.training.ppo.trainer.AutoModelForSequenceClassification", Recording)
    out = tmp_path / "lora"
    metrics = train_ppo(
        policy_path=str(policy_dir),
        reward_model_path=str(reward_dir),
        prompts=PROMPTS,
        output_dir=str(out),
        params=_params(steps=1, peft="lora", lora_r=4, eval_num_prompts=0),
    )
    assert metrics["updates"] == 1 and math.isfinite(metrics["value_loss_final"])
    # The adapter alone is saved (PEFT's format), and it loads over the policy it was trained on.
    assert (out / "adapter_config.json").exists() and not (out / "config.json").exists()
    from rlhf.modeling.adapters import ModelRef, load_causal_lm

    merged = load_causal_lm(ModelRef(path=str(out), base=ModelRef(path=str(policy_dir)), adapter="lora"))
    assert not hasattr(merged, "peft_config")
    assert loaded == [str(policy_dir), str(reward_dir)]  # value model, then reward model

    calls = iter([False, True])
    with pytest.raises(TrainingStopped):
        train_ppo(
            policy_path=str(policy_dir),
            reward_model_path=str(reward_dir),
            prompts=PROMPTS,
            output_dir=str(tmp_path / "stopped"),
            params=_params(eval_num_prompts=0),
            should_stop=lambda: next(calls),
        )
    assert not (tmp_path / "stopped").exists()


def test_shared_fields_logging_steps_and_gradient_accumulation_act_on_ppo(tmp_path, monkeypatch):
    import rlhf.training.ppo.trainer as trainer

    policy_dir, reward_dir = _tiny_models(tmp_path)
    rows: list[int] = []
    original = trainer._response_logits

    def recording(policy, input_ids, *args, **kwargs):
        if torch.is_grad_enabled():
            rows.append(input_ids.shape[0])  # a forward pass that trains
        return original(policy, input_ids, *args, **kwargs)

    monkeypatch.setattr(trainer, "_response_logits", recording)
    logs: list[dict] = []
    train_ppo(
        policy_path=str(policy_dir),
        reward_model_path=str(reward_dir),
        prompts=PROMPTS,
        output_dir=str(tmp_path / "out"),
        on_log=logs.append,
        params=_params(steps=3, logging_steps=2, gradient_accumulation_steps=2, eval_num_prompts=0),
    )
    assert [r["step"] for r in logs] == [2, 3]  # every 2nd update, and the last
    # Minibatches of 2 split into 2 micro-batches: the training passes see one response each.
    assert rows and set(rows) == {1}


def test_rollout_logprobs_from_generation_equal_a_fresh_forward_pass(tmp_path):
    # The rollout takes its log-probs from the logits generate computed; the update's
    # first ratio is only 1 if they equal what a full forward pass gives.
    import rlhf.training.ppo.trainer as trainer

    policy_dir, reward_dir = _tiny_models(tmp_path)
    params = _params(temperature=0.7)
    torch.manual_seed(0)
    m = trainer._load_models(str(policy_dir), str(reward_dir), params)
    with torch.no_grad():
        batch = trainer._rollout(m, PROMPTS * 2, params)
        ids = torch.cat([batch["query"], batch["response"]], 1)
        attn = torch.cat([batch["query_mask"], batch["mask"].long()], 1)
        logits = trainer._response_logits(m.policy, ids, attn, batch["query"].shape[1], params.temperature)
    from trl.trainer.utils import selective_log_softmax

    fresh = selective_log_softmax(logits, batch["response"]) * batch["mask"]
    assert batch["mask"].sum() > len(PROMPTS * 2)  # more than one token per response was compared
    torch.testing.assert_close(batch["logprobs"], fresh, atol=1e-5, rtol=1e-4)

"""Sequence log-likelihoods, and the DPO verifier's score (V-STaR).

A verifier trained with DPO scores a completion y of prompt x by its implicit reward
log p_verifier(y|x) - log p_reference(y|x); best-of-k picks the highest-scoring sample.
"""

from __future__ import annotations

from pathlib import Path


def completion_logprobs(
    model_dir: str | Path, prompts: list[str], completions: list[str], batch_size: int = 64
) -> list[float]:
    """Sum of log p(completion tokens | prompt) under the model in `model_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[float] = []
    for start in range(0, len(prompts), batch_size):
        batch = []
        for p, c in zip(prompts[start : start + batch_size], completions[start : start + batch_size]):
            p_ids = tok(p, add_special_tokens=False)["input_ids"]
            c_ids = tok(c, add_special_tokens=False)["input_ids"]
            batch.append((p_ids, c_ids))
        width = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        target = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (p, c) in enumerate(batch):
            seq = p + c
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            target[i, len(p) : len(seq)] = True
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        out.extend((logp * target[:, 1:]).sum(dim=1).tolist())
    return out


def dpo_scores(
    verifier_dir: str | Path,
    reference_dir: str | Path,
    prompts: list[str],
    completions: list[str],
    batch_size: int = 64,
) -> list[float]:
    v = completion_logprobs(verifier_dir, prompts, completions, batch_size)
    r = completion_logprobs(reference_dir, prompts, completions, batch_size)
    return [a - b for a, b in zip(v, r)]

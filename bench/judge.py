"""Can the judge judge? For an experiment with a judge verifier whose round has samples:
how many judge outputs carry a score in range, and how often a score agrees with the
task's reference verifier (score >= threshold vs correct), for the config's judge
template and any other templates given.

    .venv/bin/python bench/judge.py --config data/runs/configs/self_rewarding_on_smollm2_list_max.yaml \\
        --template "Here is a question and an answer.\\nQuestion: {prompt}\\nAnswer: {completion}\\nIs the answer correct? Reply with one digit only: 9 if it is correct, 0 if it is wrong."
"""

from __future__ import annotations

import argparse
import time

from filters.judge import judge_prompts, parse_score
from filters.verifiers import verify
from pipelines.cli import quiet_libraries
from selftaught.config import load_config
from selftaught.hardware import resolve_dtype
from selftaught.store import Store
from synth.backends import SamplingParams, load_backend
from synth.tasks import reference_verifier, user_turn
from train.gguf import resolve_base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--round", default="r001")
    ap.add_argument("--samples", type=int, default=64, help="the first N samples of the round")
    ap.add_argument("--template", action="append", default=[], help="another judge template ({prompt}, {completion})")
    ap.add_argument("--max-new-tokens", type=int, default=6)
    args = ap.parse_args()
    quiet_libraries()
    cfg = load_config(args.config)
    store = Store.for_config(cfg)
    j = cfg.verification.judge
    judge_model = store.model_dir("base") if j.model in ("policy", "base") else resolve_base(j.model)
    turn = user_turn(cfg.task, resolve_base(cfg.model.base) if cfg.task.chat_template else None)
    prompts = store.read_table("prompts", args.round)
    samples = store.read_table("samples", args.round).head(args.samples)
    truth = verify(reference_verifier(cfg), prompts, samples)["verdict"].to_list()
    backend = load_backend(
        "hf",
        str(judge_model / "model" if (judge_model / "model").is_dir() else judge_model),
        batch_size=64,
        dtype=resolve_dtype(cfg.sampling.dtype),
    )
    print(
        f"judge {j.model} on {samples.height} samples of {args.round} ({sum(v == 'correct' for v in truth)} correct "
        f"by the reference verifier); scale 0..{j.max_score}, threshold {j.threshold:g}"
    )
    for i, template in enumerate([j.template, *args.template]):
        t0 = time.monotonic()
        asks = judge_prompts(samples, template, turn)
        texts = [
            o[0]
            for o in backend.generate(
                asks["prompt"].to_list(), SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
            )
        ]
        scores = [parse_score(x, j.max_score) for x in texts]
        scored = [(s, v) for s, v in zip(scores, truth) if s is not None]
        agree = sum((s >= j.threshold) == (v == "correct") for s, v in scored)
        print(
            f"template {i} ({'config' if i == 0 else 'extra'}): {len(scored)}/{len(texts)} outputs with a score, "
            f"{agree}/{len(scored)} agree with the verifier, {time.monotonic() - t0:.0f}s; "
            f"outputs start {texts[:3]!r}"
        )


if __name__ == "__main__":
    main()

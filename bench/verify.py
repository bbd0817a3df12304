"""Math verification throughput: the pipeline's verifier vs a plain per-sample loop.

Realistic sample sets: MATH-500 problems x 8 samples, each a rewording of the
reference solution with the right answer (5 of 8, in 3 written forms) or a wrong
one (3 of 8, 2 distinct). Both sides see the same rows; every verdict is compared.

    .venv/bin/python bench/verify.py [--prompts 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from filters.mathverify import check_many
from selftaught.schemas import CORRECT

DATA = Path(__file__).parent.parent / "data" / "math500" / "test.jsonl"


def sample_sets(n_prompts: int, seed: int = 0) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()][:n_prompts]
    rng = random.Random(seed)
    pairs = []
    for i, r in enumerate(rows):
        sol, ans = r["solution"], r["answer"]
        body = sol[: sol.rfind("\\boxed")] if "\\boxed" in sol else sol
        wrong = [rows[(i + k) % len(rows)]["answer"] for k in (1, 2)]
        forms = [
            f"{body}\\boxed{{{ans}}}$.",
            f"{body} So the final answer is $\\boxed{{{ans}}}$.",
            f"Thinking step by step. {body} Hence $\\boxed{{{ans}}}$.",
        ]
        for j in range(8):
            lead = f"(sample {j}, t={rng.random():.3f}) "  # every completion text differs
            text = forms[j % 3] if j < 5 else f"{body} The answer is $\\boxed{{{wrong[j % 2]}}}$."
            pairs.append((lead + text, ans))
    return pairs


def plain_loop(pairs):
    from math_verify import parse, verify

    out = []
    for completion, reference in pairs:
        gold = parse(f"${reference}$")
        out.append(CORRECT if verify(gold, parse(completion)) else "incorrect")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=200)
    args = ap.parse_args()
    pairs = sample_sets(args.prompts)
    t0 = time.monotonic()
    plain = plain_loop(pairs)
    t_plain = time.monotonic() - t0
    t0 = time.monotonic()
    ours = [v for v, *_ in check_many(pairs)]
    t_ours = time.monotonic() - t0
    diff = sum(a != b for a, b in zip(plain, ours))
    n = len(pairs)
    print(f"{n} samples ({args.prompts} prompts x 8), {os.cpu_count()} CPUs")
    print(f"{'method':<34} {'seconds':>8} {'samples/s':>10} {'speed-up':>9}")
    print(f"{'plain loop: parse+verify per row':<34} {t_plain:8.1f} {n / t_plain:10.0f} {1.0:9.1f}x")
    print(f"{'selftaught check_many (pool)':<34} {t_ours:8.1f} {n / t_ours:10.0f} {t_plain / t_ours:9.1f}x")
    print(f"verdicts that differ: {diff} of {n}; correct: plain {plain.count(CORRECT)}, ours {ours.count(CORRECT)}")


if __name__ == "__main__":
    main()

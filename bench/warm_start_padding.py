"""The demo's warm start with batches padded to their longest row (1) and to a multiple of 16
tokens (the default), side by side: per-step training loss and the largest difference.

    .venv/bin/python bench/warm_start_padding.py [--steps 20]

Padding adds no loss term (pad tokens are masked and follow every real token of their row),
so the losses agree to float rounding; the matmuls have other shapes, so the rounding differs,
and over the full 600 steps at lr 1e-3 the tiny model ends on a different base (README,
"Measured"). Each variant trains in a fresh process from the same initial weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def child(pad: int, steps: int, out: str) -> None:
    """One warm start in this process; prints its per-step losses as a JSON list."""
    import polars as pl
    from transformers import TrainerCallback

    from selftaught.config import ExperimentConfig
    from synth.tasks import make_task
    from synth.tiny import build_tiny_model, spec_from_config
    from train.sft import train_sft, warm_start_settings

    cfg = ExperimentConfig()  # the embedded demo
    warm = make_task(cfg.task).warm_start()
    init = build_tiny_model(spec_from_config(cfg.model.tiny), Path(out) / "init")
    s = warm_start_settings(cfg.model.warm_start)
    s = dataclasses.replace(s, max_steps=steps, trl=(*s.trl, ("pad_to_multiple_of", pad), ("logging_steps", 1)))
    losses = []

    class Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    train_sft(init, warm.select("prompt", pl.col("target").alias("completion")), out, s, callbacks=(Losses(),))
    print(json.dumps(losses), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        return child(a.child, a.steps, a.out)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pad in (1, 16):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(pad),
                    "--steps",
                    str(a.steps),
                    "--out",
                    str(Path(tmp) / str(pad)),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                sys.exit(f"pad {pad}: training failed:\n{proc.stderr[-3000:]}")
            runs[pad] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'step':>4} {'loss, longest row':>18} {'loss, multiple of 16':>21} {'difference':>11}")
    for i, (a1, a16) in enumerate(zip(runs[1], runs[16]), 1):
        print(f"{i:>4} {a1:>18.7f} {a16:>21.7f} {a16 - a1:>11.1e}")
    print(f"largest difference over {len(runs[1])} steps: {max(abs(x - y) for x, y in zip(runs[1], runs[16])):.1e}")


if __name__ == "__main__":
    main()

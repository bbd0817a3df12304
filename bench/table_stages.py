"""The table stages of one round at GPU scale: verdicts -> selection -> training set on
1.6M samples (400k list_max prompts x 4), each stage timed, with the peak memory.

The round is built here with the project's own functions: `make_problems` draws 400k
distinct list_max problems (lists of 4 and 6) in the real preset's chat turn, and each
prompt gets 4 completions shaped like SmolLM2's on that task ("The largest number in the
list is 94.", a bare "13", a '#### 90' line), 65% of them right. A tenth of them restate
the list, so their text differs per prompt, as a model's does. The inputs are written once
to data/bench/table_stages/ and reused.

Each measurement runs in a fresh process and reports the high-water mark of its resident
memory (`ru_maxrss`) beside the inputs' own footprint:

- `stages`: what the `verdicts` and `training_set` assets compute: verify(), the sample
  metrics, the verdict audit, then training_rows() with the preset's selection;
- `verify-rows`: verify() through the per-row path, the one a verifier without
  `check_frame` takes (the numeric verifier's `check`, row by row), for the ratio.

    .venv/bin/python bench/table_stages.py [--prompts 400000] [--samples 4] [--skip-rows]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "bench" / "table_stages"
CHAT = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
SHAPES = [
    "The largest number in the list is {x}.",
    "The largest number in this list is {x}.",
    "{x}",
    "The largest number in the list that we need is {x}, which is {x}.",
    "The largest number is {x}.\n#### {x}",
]


def build(n_prompts: int, n_samples: int) -> tuple[Path, Path]:
    """The round's prompts and samples tables (cached by size)."""
    from selftaught import schemas
    from synth.chat_tasks import make_problems

    where = OUT / f"{n_prompts}x{n_samples}"
    prompts_path, samples_path = where / "prompts.parquet", where / "samples.parquet"
    if samples_path.exists():
        return prompts_path, samples_path
    where.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    half = n_prompts // 2
    prompts = make_problems("list_max", {4: half, 6: n_prompts - half}, 0, CHAT.format, round_key="r001")
    rng = random.Random(0)
    rows = []
    for pid, prompt, ref in prompts.select("prompt_id", "prompt", "reference").iter_rows():
        listed = prompt.rsplit(": ", 1)[1].split("?")[0]
        numbers = listed.split(", ")
        for k in range(n_samples):
            x = ref if rng.random() < 0.65 else rng.choice(numbers)
            if rng.random() < 0.1:  # text that differs per prompt
                text = f"Looking at {listed}, the largest number is {x}.\n#### {x}"
            else:
                text = rng.choice(SHAPES).format(x=x)
            rows.append((pid, k, prompt, text))
    samples = pl.DataFrame(rows, schema=["prompt_id", "sample_idx", "prompt", "completion"], orient="row")
    samples = samples.with_columns(
        round=pl.lit("r001"),
        sample_idx=pl.col("sample_idx").cast(pl.Int32),
        policy_id=pl.lit("smollm2-135m"),
        policy_hash=pl.lit("0" * 16),
        backend=pl.lit("hf"),
        temperature=pl.lit(0.7),
        top_p=pl.lit(1.0),
        max_new_tokens=pl.lit(64, pl.Int32),
        seed=pl.lit(0, pl.Int64),
    )
    samples = schemas.validate(samples.select(list(schemas.SAMPLES)).cast(schemas.SAMPLES), "samples")
    prompts.write_parquet(prompts_path)
    samples.write_parquet(samples_path)
    print(f"built {prompts.height} prompts, {samples.height} samples in {time.monotonic() - t0:.0f} s", flush=True)
    return prompts_path, samples_path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stages(prompts_path: str, samples_path: str, mode: str) -> dict:
    """One measurement, in this (fresh) process."""
    from filters.audit import audit
    from filters.metrics import sample_metrics
    from filters.select import judged, training_rows
    from filters.verifiers import get_verifier, verify
    from selftaught import schemas
    from selftaught.config import load_config

    cfg = load_config(ROOT / "pipelines" / "presets" / "smollm2_list_max.yaml")
    prompts, samples = pl.read_parquet(prompts_path), pl.read_parquet(samples_path)
    out: dict = {"inputs_mb": round(_rss_mb())}
    verifier = get_verifier("numeric", cfg.verification)
    if mode == "verify-rows":
        verifier = _RowsOnly(verifier)
    t = time.monotonic()
    verdicts = verify(verifier, prompts, samples)
    out["verify_s"] = time.monotonic() - t
    if mode == "stages":
        t = time.monotonic()
        sample_metrics(judged(samples.drop("prompt", "completion"), verdicts), prompts)
        out["metrics_s"] = time.monotonic() - t
        t = time.monotonic()
        checked = audit(verifier, prompts, samples, verdicts, cfg.verification.audit_rows)
        out["audit_s"] = time.monotonic() - t
        out["audit"] = checked.numbers
        t = time.monotonic()
        got = training_rows(samples, verdicts, schemas.empty("repairs"), cfg.selection)
        out["training_set_s"] = time.monotonic() - t
        out["training_rows"] = got.rows.height
    out["correct"] = int((verdicts["verdict"] == "correct").sum())
    out["peak_mb"] = round(_rss_mb())
    return out


class _RowsOnly:
    """A verifier seen without its `check_frame`: verify() then takes the per-row path."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.version, self.plugin = inner.name, inner.version, inner.plugin

    def check(self, prompt, completion, reference):
        return self.inner.check(prompt, completion, reference)


def measure(prompts_path: Path, samples_path: Path, mode: str) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from bench.table_stages import run_stages; "
        "print('RESULT', json.dumps(run_stages(sys.argv[2], sys.argv[3], sys.argv[4])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(prompts_path), str(samples_path), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=400_000)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--skip-rows", action="store_true", help="only the pipeline's path, not the per-row one")
    args = ap.parse_args()
    prompts_path, samples_path = build(args.prompts, args.samples)
    n = args.prompts * args.samples
    print(f"{n:,} samples ({args.prompts:,} prompts x {args.samples}); each line a fresh process", flush=True)
    modes = ["stages"] + ([] if args.skip_rows else ["verify-rows"])
    results = {}
    for mode in modes:
        r = results[mode] = measure(prompts_path, samples_path, mode)
        stages = {k[:-2]: v for k, v in r.items() if k.endswith("_s")}
        total = sum(stages.values())
        print(
            f"{mode:12} "
            + "  ".join(f"{k} {v:6.1f} s" for k, v in stages.items())
            + f"  | total {total:6.1f} s, peak {r['peak_mb']:,} MB (inputs {r['inputs_mb']:,} MB)",
            flush=True,
        )
    if "verify-rows" in results:
        print(
            f"verify(): per-row path / pipeline's path = {results['verify-rows']['verify_s'] / results['stages']['verify_s']:.1f}x"
        )
    audit = results["stages"].get("audit", {})
    print("audit: " + ", ".join(f"{k} {v:.4g}" for k, v in audit.items()))
    (OUT / "results.json").write_text(json.dumps({"samples": n, **results}, indent=1))


if __name__ == "__main__":
    main()

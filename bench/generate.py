"""Generation overhead: the pipeline's sharded, resumable job vs the raw backend.

Same prompts, same model, same sampling settings, timed side by side:
  raw         HFBackend(...).generate(all prompts) in this process
  job         synth.generate.run: shards written atomically as Parquet, then read back
  job (subp)  synth.generate.run_isolated: the same in a fresh Python process
              (interpreter start, imports and model load included)
  job (N p)   run_isolated with --workers N (sampling.data_parallel): N processes
              sharing the shards, each with its share of the CPU threads
Each includes loading the model. Shard seeds differ from the raw call's seed, so
the completions (and their lengths) differ a little; throughput is reported in
generated characters per second (one token per character with the tiny model's
tokenizer) and the overhead compares throughput.

    .venv/bin/python bench/generate.py [--prompts 256] [--n 8] [--repeats 2] [--workers 2] [--model DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pipelines.cli import quiet_libraries
from synth.arithmetic import make_problems
from synth.backends import HFBackend, SamplingParams
from synth.generate import GenerationJob, run, run_isolated
from synth.tiny import TinySpec, build_tiny_model


def timed(fn):
    t0 = time.perf_counter()
    chars = fn()
    return time.perf_counter() - t0, chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="generation processes of the last row (1: no row)")
    ap.add_argument("--model", help="model directory (default: a fresh tiny model like the demo's)")
    args = ap.parse_args()
    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model = args.model or str(build_tiny_model(TinySpec(), work / "model"))
    prompts = make_problems({3: args.prompts // 2, 4: args.prompts - args.prompts // 2}, seed=11)
    params = SamplingParams(n=args.n, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=3)

    def raw():
        outs = HFBackend(model, batch_size=args.batch_size).generate(prompts["prompt"].to_list(), params)
        return sum(len(t) for o in outs for t in o)

    def job(isolated: bool, i: int, workers: int = 1):
        out = work / f"job-{'subp' if isolated else 'inproc'}-{workers}-{i}"
        shutil.rmtree(out, ignore_errors=True)
        j = GenerationJob(backend="hf", model_dir=model, params=params, out_dir=str(out), round="r001",
                          policy_id="base", policy_hash="bench", shard_size=args.shard_size,
                          options={"batch_size": args.batch_size})
        df = run_isolated(j, prompts, lambda line: None, workers=workers) if isolated else run(j, prompts)
        return int(df["completion"].str.len_chars().sum())

    best = {}
    for i in range(args.repeats):  # interleaved, so drift in machine load hits all three alike
        modes = [("raw", raw), ("job", lambda: job(False, i)), ("job (subprocess)", lambda: job(True, i))]
        if args.workers > 1:
            modes.append((f"job ({args.workers} processes)", lambda: job(True, i, args.workers)))
        for name, fn in modes:
            seconds, chars = timed(fn)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, chars)
    shutil.rmtree(work, ignore_errors=True)

    print(f"{args.prompts} prompts x {args.n} samples, max {args.max_new_tokens} new tokens, "
          f"batch {args.batch_size}, shards of {args.shard_size} prompts; best of {args.repeats}")
    print(f"{'mode':<20}{'seconds':>9}{'chars':>9}{'chars/s':>10}{'overhead':>10}")
    raw_rate = best["raw"][1] / best["raw"][0]
    for name, (seconds, chars) in best.items():
        rate = chars / seconds
        print(f"{name:<20}{seconds:>9.1f}{chars:>9}{rate:>10.0f}{raw_rate / rate - 1:>+10.1%}")


if __name__ == "__main__":
    main()

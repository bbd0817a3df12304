"""Math equivalence with `math-verify`, run in a process pool.

math-verify times out with SIGALRM, which works only in a main thread, so each
check runs in a worker process's main thread. A timeout or an error gives
`unverifiable` with the reason, never a silent `incorrect`. The gold answer is
parsed once per distinct reference, and each distinct (completion, reference)
pair is checked once per batch; workers also reuse verdicts for answers they
have already compared with the same reference.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections import defaultdict

from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE

_GOLD: dict[str, object] = {}
_VERDICT: dict[tuple[str, str], bool] = {}


def _answer_text(parsed) -> str | None:
    if not parsed:
        return None
    strings = [p for p in parsed if isinstance(p, str)]
    return strings[0] if strings else str(parsed[0])


def check_pair(completion: str, reference: str, timeout: int = 5) -> tuple[str, str | None, str | None, str]:
    """(verdict, extracted answer, parsed reference, reason) for one pair; runs in a worker."""
    from math_verify import parse, verify

    try:
        if reference not in _GOLD:
            gold_text = reference if "\\boxed" in reference else f"${reference}$"
            _GOLD[reference] = parse(gold_text, parsing_timeout=timeout, raise_on_error=True)
        gold = _GOLD[reference]
        if not gold:
            return UNVERIFIABLE, None, None, "reference could not be parsed"
        pred = parse(completion, parsing_timeout=timeout, raise_on_error=True)
        answer = _answer_text(pred)
        if not pred:
            return INCORRECT, None, _answer_text(gold), "no answer extracted"
        key = (reference, str(pred))
        if key not in _VERDICT:
            _VERDICT[key] = verify(gold, pred, timeout_seconds=timeout, raise_on_error=True)
        ok = _VERDICT[key]
        reason = "" if ok else f"{answer} is not equivalent to {_answer_text(gold)}"
        return (CORRECT if ok else INCORRECT), answer, _answer_text(gold), reason
    except BaseException as exc:  # TimeoutException derives from BaseException in some versions
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return UNVERIFIABLE, None, None, f"math-verify {type(exc).__name__}: {str(exc)[:200]}"


def _check_chunk(items: list[tuple[str, str]], timeout: int) -> list[tuple]:
    return [check_pair(c, r, timeout) for c, r in items]


def check_many(
    pairs: list[tuple[str, str]], workers: int | None = None, timeout: int = 5, chunk_timeout: float | None = None
) -> list[tuple]:
    """Check (completion, reference) pairs; equal pairs are checked once.

    Pairs of one reference go to the same worker (its gold parse is reused). A
    chunk that outlives `chunk_timeout` (a hang math-verify's own timeout missed)
    makes its rows unverifiable and the pool is replaced.
    """
    distinct = list(dict.fromkeys(pairs))
    by_ref: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in distinct:
        by_ref[pair[1]].append(pair)
    workers = workers or max(1, min(os.cpu_count() or 1, len(by_ref)))
    chunks = _balanced_chunks(list(by_ref.values()), workers * 4)
    results: dict[tuple[str, str], tuple] = {}
    if workers == 1:
        for chunk in chunks:
            results.update(zip(chunk, _check_chunk(chunk, timeout)))
    else:
        results = _run_pool(chunks, workers, timeout, chunk_timeout)
    return [results[p] for p in pairs]


def _balanced_chunks(groups: list[list], n: int) -> list[list]:
    chunks: list[list] = [[] for _ in range(max(1, n))]
    for group in sorted(groups, key=len, reverse=True):
        min(chunks, key=len).extend(group)
    return [c for c in chunks if c]


def _run_pool(chunks, workers, timeout, chunk_timeout) -> dict:
    results: dict = {}
    limit = chunk_timeout or (timeout * 4 + 30)
    pending = list(chunks)
    while pending:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
        futures = {pool.submit(_check_chunk, chunk, timeout): chunk for chunk in pending}
        pending = []
        broken = False
        for fut, chunk in futures.items():
            try:
                results.update(zip(chunk, fut.result(timeout=limit * max(1, len(chunk) / 50))))
            except (cf.TimeoutError, cf.process.BrokenProcessPool) as exc:
                why = "timed out" if isinstance(exc, cf.TimeoutError) else "crashed"
                for pair in chunk:
                    results[pair] = (UNVERIFIABLE, None, None, f"math-verify worker {why}")
                broken = True
                break
        if broken:  # kill hung workers, then redo the chunks that did not finish
            for proc in list(pool._processes.values()):
                proc.kill()
            pending = [c for c in futures.values() if c[0] not in results]
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def boxed_answer(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces), whitespace-normalised; None if absent."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth, out = start + len("\\boxed{"), 1, []
    while i < len(text) and depth:
        ch = text[i]
        depth += (ch == "{") - (ch == "}")
        if depth:
            out.append(ch)
        i += 1
    return "".join("".join(out).split()) if depth == 0 else None

"""A difficulty curriculum for the arithmetic pool (bootstrapping needs pass@k > 0).

Round 1 opens every pool difficulty up to the frontier; each round also samples a small
probe of the next difficulty. Round k opens the hardest difficulty whose pass@n in round
k-1 beat `open_at` (never less than the frontier), so a difficulty opens one step at a
time, once the policy has solved some of its probe problems.
"""

from __future__ import annotations

from filters.metrics import frontier_of


def round_counts(task, base_accuracy: dict[int, float], pass_rates: dict[int, float]) -> tuple[int, dict[int, int]]:
    """This round's level and pool size per difficulty, for a `TaskConfig` with a curriculum:
    the frontier from the base model's evaluation, `pass_rates` from the previous round
    (filters.metrics.pass_rates; empty in round 1)."""
    frontier = frontier_of(task, base_accuracy) or min(task.pool)
    at = level(frontier, pass_rates, task.curriculum.open_at)
    return at, pool_counts(task.pool, at, task.curriculum.probe)


def level(frontier: int, pass_rates: dict[int, float], open_at: float) -> int:
    """`pass_rates`: difficulty -> share of the previous round's problems with a correct sample."""
    passed = [d for d, rate in pass_rates.items() if rate > open_at]
    return max([frontier, *passed])


def pool_counts(pool: dict[int, int], at: int, probe: int) -> dict[int, int]:
    counts = {d: n for d, n in pool.items() if d <= at}
    nxt = [d for d in sorted(pool) if d > at]
    if nxt:
        counts[nxt[0]] = min(probe, pool[nxt[0]])
    return counts

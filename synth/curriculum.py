"""A difficulty curriculum for the arithmetic pool (bootstrapping needs pass@k > 0).

Round 1 opens every pool difficulty up to the frontier; each round also samples a small
probe of the next difficulty. Round k opens the hardest difficulty whose pass@n in round
k-1 beat `open_at` (never less than the frontier), so a difficulty opens one step at a
time, once the policy has solved some of its probe problems.
"""

from __future__ import annotations


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

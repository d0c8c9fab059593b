"""Shared helper of the benchmark scripts."""

import time


def best_time(fn, *args, repeats: int = 1) -> float:
    """The shortest wall time (s) of ``repeats`` calls ``fn(*args)``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best

"""Wall-clock timing shared by the peer benchmarks."""
import time

import numpy as np


def median_time(fn, seconds, min_runs=5):
    """Median milliseconds of `fn()` over at least `min_runs` calls and `seconds`, after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))

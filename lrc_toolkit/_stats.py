"""Summary statistics of runs over several seeds."""

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the population standard deviation (divided by $n$, as the
    paper's tables report it) of `values`."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

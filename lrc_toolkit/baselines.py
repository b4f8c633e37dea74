"""Baselines to put beside LrcSSM in a results table.

MiniRocket (Dempster, Schmidt, Webb, 2021) is what a practitioner tries first on a
UEA data set: random convolutional features and a ridge classifier, fitted in
seconds. The paper's protocol splits are used unchanged.
"""

import time
from typing import Any

import numpy as np


def _series(split) -> np.ndarray:
    """`(N, channels, T)` as aeon expects, padded steps set to zero."""
    x = np.asarray(split.x, dtype=np.float64)
    mask = getattr(split, "mask", None)
    if mask is not None:
        x = np.where(np.asarray(mask)[:, :, None], x, 0.0)
    return np.transpose(x, (0, 2, 1))


def minirocket(train, test, *, seed: int = 0, val=None) -> dict[str, Any]:
    """Fit aeon's `MiniRocketClassifier` on a training split and score it.

    **Arguments:**

    - `train`, `test`: splits with `x` (N, T, C), optional `mask` (N, T) and `y`
        (N,), e.g. `load_uea(...).train` and `.test`. Padding (where `mask` is
        `False`) is set to zero.
    - `seed`: the random state of the features.
    - `val`: optionally a validation split, scored too (MiniRocket does not use it
        for fitting).

    **Returns:**

    `{"test_accuracy", "val_accuracy" (or None), "seconds"}`; `seconds` is the fit
    time.
    """
    from ._extras import require

    MiniRocketClassifier = require(
        "aeon.classification.convolution_based", "The MiniRocket baseline"
    ).MiniRocketClassifier

    start = time.perf_counter()
    clf = MiniRocketClassifier(random_state=seed)
    clf.fit(_series(train), np.asarray(train.y))
    seconds = time.perf_counter() - start

    def accuracy(split):
        return float(np.mean(clf.predict(_series(split)) == np.asarray(split.y)))

    return {
        "test_accuracy": accuracy(test),
        "val_accuracy": None if val is None else accuracy(val),
        "seconds": seconds,
    }

"""The MiniRocket baseline on a bundled data set, against aeon used directly."""

import numpy as np
import pytest
from aeon.classification.convolution_based import MiniRocketClassifier

from lrc_toolkit.baselines import minirocket
from lrc_toolkit.data import load_uea


@pytest.mark.slow
def test_minirocket_matches_aeon_on_the_same_split():
    ds = load_uea("BasicMotions", seed=2345)
    out = minirocket(ds.train, ds.test, val=ds.val, seed=0)
    # Independent reference: aeon on the raw arrays, channels first.
    clf = MiniRocketClassifier(random_state=0)
    clf.fit(np.transpose(ds.train.x, (0, 2, 1)), ds.train.y)
    expected = np.mean(clf.predict(np.transpose(ds.test.x, (0, 2, 1))) == ds.test.y)
    assert out["test_accuracy"] == expected
    assert 0.0 <= out["val_accuracy"] <= 1.0
    assert out["seconds"] > 0
    # BasicMotions is easy: a baseline that cannot separate it is broken.
    assert out["test_accuracy"] >= 0.9


def test_minirocket_zeroes_padding():
    ds = load_uea("JapaneseVowels", seed=2345)
    assert not ds.train.mask.all()  # variable lengths: padded
    garbage = ds.train.__class__(
        **{
            **ds.train.__dict__,
            "x": np.where(ds.train.mask[:, :, None], ds.train.x, 1e6),
        }
    )
    a = minirocket(ds.train, ds.test, seed=0)
    b = minirocket(garbage, ds.test, seed=0)
    assert a["test_accuracy"] == b["test_accuracy"]

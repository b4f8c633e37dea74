"""Screen of the LrcSSM defaults, one change at a time, on several tasks and seeds.

Variants (every other setting is `lrc-toolkit train`'s default preset: H = D = 32,
2 blocks, lr 3e-3, batch 8):

- `old`: the 0.2 defaults: LRC with the paper's reference initialisation, one
  global step dt = 1.
- `responsive`: the responsive LRC initialisation alone.
- `timescales`: learned per-neuron time scales (`TimeScaled`, log-uniform over
  [1e-3, 1]) alone.
- `new`: both (half of the neurons start at the fast end), with the 0.2 skip path
  (`residual="input"`); `new-normres`: `new` with the skip path after the input
  LayerNorm (`residual="normalised"`), with Equinox's MLPs; `new-b4`: batch 4;
  `new-short`: time scales over [1e-2, 1];
  `new-wide` with [1e-3, 0.9]; `-lr`: learning rate 1e-2; `-last`: the last
  state's readout; `-wd`: weight decay 1e-2.
- `new-he`: the **0.3 defaults**: `new-normres` with He-uniform MLPs and zero
  biases (`init="he_uniform"`, the reference's); its parts: `new-zb` (Equinox's
  weights, zero biases), `new-he-head0` (the decoder's last layer zero: logits 0
  at the start), `new-he-lr1e-3` (learning rate 1e-3); `new-he-lr2e-3` (2e-3) and
  `new-he-warm1` (a one-epoch linear warm-up of the rate), neither kept.
- rows named `log-uniform` (and `log-uniform-0.9`, `-lr`, `-last`) in the
  results are from before the fast half (every time scale log-uniform over
  [1e-3, 1]; `TimeScaled(fast_fraction=0)`), kept as the screen that led to it.

Tasks: a two-frequency task (periods 25 and 43 samples, T = 300, 2 channels), the
same with long periods (250 and 430 samples, T = 1 500), a memory task (recall a
class cue after a gap), and aeon's bundled BasicMotions, JapaneseVowels, ArrowHead,
GunPoint (and ACSF1 with `--tasks acsf1`).

    python benchmarks/learning/screen.py --tasks freq freq-long memory \
        --variants old new minirocket --seeds 0 1 2 --epochs 8 --out benchmarks/results/learning

Each run appends one JSON line to OUT/runs.jsonl (a rerun skips what is there);
`summary.py` makes the table.
"""

import argparse
import dataclasses
import functools
import json
import os
import time
import types

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from lrc_toolkit.models import DEFAULTS_0_2, LrcSSM
from lrc_toolkit.training import DEFAULT_PRESET, fit


def _split(x, y, seed, fractions=(0.7, 0.15)):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    n1 = int(fractions[0] * len(y))
    n2 = n1 + int(fractions[1] * len(y))
    out = []
    for part in (idx[:n1], idx[n1:n2], idx[n2:]):
        xs = x[part].astype(np.float32)
        out.append(
            types.SimpleNamespace(
                x=xs, y=y[part].astype(np.int32), mask=np.ones(xs.shape[:2], bool)
            )
        )
    return out


def frequency_task(seed, periods=(25, 43), T=300, n=200, channels=2):
    """Noisy sinusoids (random phase and amplitude per channel) whose class is
    their period."""
    rng = np.random.default_rng(1000 + seed)
    y = rng.integers(0, 2, n)
    t = np.arange(T)[None, :, None]
    period = np.asarray(periods)[y][:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, channels))
    amp = rng.uniform(0.8, 1.2, (n, 1, channels))
    x = amp * np.sin(2 * np.pi * t / period + phase)
    x = x + 0.3 * rng.normal(size=x.shape)
    return _split(x, y, seed)


def memory_task(seed, gap=1000, n=200, classes=2):
    """A class cue in channel 0 for the first 10 steps, then `gap` steps of noise
    in both channels; the label is the cue's sign."""
    rng = np.random.default_rng(2000 + seed)
    y = rng.integers(0, classes, n)
    T = 10 + gap
    x = 0.5 * rng.normal(size=(n, T, 2))
    x[:, :10, 0] += np.where(y == 1, 2.0, -2.0)[:, None]
    return _split(x, y, seed)


def uea_task(name, seed):
    from lrc_toolkit.data import load_uea

    data = load_uea(name, seed=2345 + 1111 * seed)
    return data.train, data.val, data.test


TASKS = {
    "freq": frequency_task,
    "freq-long": functools.partial(frequency_task, periods=(250, 430), T=1500),
    "memory": memory_task,
    "basicmotions": functools.partial(uea_task, "BasicMotions"),
    "japanesevowels": functools.partial(uea_task, "JapaneseVowels"),
    "arrowhead": functools.partial(uea_task, "ArrowHead"),
    "gunpoint": functools.partial(uea_task, "GunPoint"),
    "acsf1": functools.partial(uea_task, "ACSF1"),
}


# variant: (LrcSSM arguments, TrainConfig overrides[, a transform of the built
# model]), every one explicit (not relative to the current defaults). "old": the 0.2
# defaults; "new-he": the 0.3 defaults (the responsive start, learned time scales,
# the normalised skip, He-uniform MLPs).
_OLD = DEFAULTS_0_2
_RESPONSIVE = dict(_OLD, neuron_init="responsive")
_NEW = dict(_RESPONSIVE, time_scales=(1e-3, 1.0))
VARIANTS = {
    "old": (_OLD, {}),
    "responsive": (_RESPONSIVE, {}),
    "timescales": (dict(_OLD, time_scales=(1e-3, 1.0)), {}),
    "new": (_NEW, {}),
    "new-wide": (dict(_NEW, time_scales=(1e-3, 0.9)), {}),
    "new-lr": (_NEW, dict(learning_rate=1e-2)),
    "new-last": (dict(_NEW, readout="last"), {}),
    "new-wd": (_NEW, dict(weight_decay=1e-2)),
    "responsive-lr": (_RESPONSIVE, dict(learning_rate=1e-2)),
    # the univariate-regression screen (ArrowHead, ACSF1): the skip path after the
    # input LayerNorm, more optimiser steps per epoch, a shorter top time scale
    "new-normres": (dict(_NEW, residual="normalised"), {}),
    "new-b4": (_NEW, dict(batch_size=4)),
    "new-short": (dict(_NEW, time_scales=(1e-2, 1.0)), {}),
    # the input-sensitive start: He-uniform MLP weights and zero biases (the
    # reference's), on top of the 0.3 defaults
    "new-he": (dict(_NEW, residual="normalised", init="he_uniform"), {}),
    # ... its two parts: Equinox's weights with zero biases; and He with the
    # decoder's last layer zero (logits 0 at the start), or a lower learning rate
    "new-zb": (dict(_NEW, residual="normalised", init="equinox"), {}, "zero_bias"),
    "new-he-head0": (dict(_NEW, residual="normalised", init="he_uniform"), {}, "head0"),
    "new-he-lr1e-3": (
        dict(_NEW, residual="normalised", init="he_uniform"),
        dict(learning_rate=1e-3),
    ),
    # the 0.3 defaults at a lower learning rate, or with a one-epoch linear warm-up
    # (the DiagonalCfC's slow start at lr 3e-3 is an early overshoot)
    "new-he-lr2e-3": (
        dict(_NEW, residual="normalised", init="he_uniform"),
        dict(learning_rate=2e-3),
    ),
    "new-he-warm1": (
        dict(_NEW, residual="normalised", init="he_uniform"),
        dict(warmup_epochs=1),
    ),
}


def _zero_bias(model):
    """Every MLP bias (encoder, blocks, decoder) set to zero."""
    mlps = lambda m: [m.encoder, m.decoder, *(b.mlp for b in m.blocks)]
    biases = lambda m: [layer.bias for net in mlps(m) for layer in net.layers]
    return eqx.tree_at(biases, model, replace_fn=jnp.zeros_like)


def _head0(model):
    """The decoder's last layer zero: every logit is 0 at the start."""
    last = lambda m: (m.decoder.layers[-1].weight, m.decoder.layers[-1].bias)
    return eqx.tree_at(last, model, replace_fn=jnp.zeros_like)


# transforms of the built model that a variant names as its third entry
TRANSFORMS = {"zero_bias": _zero_bias, "head0": _head0}


def run_minirocket(task, seed, epochs):
    from lrc_toolkit.baselines import minirocket

    train, val, test = TASKS[task](seed)
    start = time.perf_counter()
    result = minirocket(train, test, val=val, seed=seed)
    return {
        "task": task,
        "variant": "minirocket",
        "seed": seed,
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
        "test_accuracy": result["test_accuracy"],
    }


def run(task, variant, seed, epochs):
    if variant == "minirocket":
        return run_minirocket(task, seed, epochs)
    splits = TASKS[task](seed)
    train = splits[0]
    preset = DEFAULT_PRESET
    model = LrcSSM(
        train.x.shape[-1],
        int(max(s.y.max() for s in splits)) + 1,
        **(preset.model_kwargs() | dict(dtype=jnp.float32) | VARIANTS[variant][0]),
        key=jr.key(seed),
    )
    if len(VARIANTS[variant]) > 2:
        model = TRANSFORMS[VARIANTS[variant][2]](model)
    config = dataclasses.replace(
        preset.train, epochs=epochs, seed=seed, **VARIANTS[variant][1]
    )
    start = time.perf_counter()
    try:
        result = fit(model, *splits, config=config, progress=False)
    except Exception as e:  # a diverged run is a result too
        return {
            "task": task,
            "variant": variant,
            "seed": seed,
            "epochs": epochs,
            "seconds": time.perf_counter() - start,
            "failed": str(e).splitlines()[-1][:300] if str(e) else type(e).__name__,
            "val_accuracy": [],
            "test_accuracy": float("nan"),
        }
    return {
        "task": task,
        "variant": variant,
        "seed": seed,
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
        "val_loss": [h["val_loss"] for h in result.history],
        "val_accuracy": [h["val_accuracy"] for h in result.history],
        "train_loss": [h.get("train_loss") for h in result.history],
        "test_accuracy": result.test_metrics["accuracy"],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["freq", "memory"], choices=TASKS)
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=[*VARIANTS, "minirocket"],
        help="LrcSSM variants, and `minirocket` (aeon's, on the same splits)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", default="benchmarks/results/learning")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "runs.jsonl")
    done = set()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                done.add((r["task"], r["variant"], r["seed"], r["epochs"]))
    for seed in args.seeds:
        for task in args.tasks:
            for variant in args.variants:
                if (task, variant, seed, args.epochs) in done:
                    continue
                r = run(task, variant, seed, args.epochs)
                with open(path, "a") as f:
                    f.write(json.dumps(r) + "\n")
                if "failed" in r:
                    print(f"{task:14s} {variant:11s} seed {seed}: FAILED", flush=True)
                    continue
                print(
                    f"{task:14s} {variant:11s} seed {seed}: val acc "
                    + " ".join(f"{v:.2f}" for v in r.get("val_accuracy", []))
                    + f"; test {100 * r['test_accuracy']:.1f} % ({r['seconds']:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()

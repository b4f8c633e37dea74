"""The LRC's "slow start" on a synthetic frequency task, measured.

A new user found the built-in LRC sitting at loss ~0.68 for ~15 epochs on a
two-class frequency task at H = D = 16, where a simple custom neuron learned at once.
This script trains LrcSSM on such a task (one noisy sine per sequence, class = its
frequency, random phase and amplitude) with the CLI's default training settings, for
two step sizes `dt`, both LRC initialisations and the custom-neuron guide's
`GatedLeaky`, and prints the validation loss per epoch, the test accuracy and each
neuron's "state response" at initialisation (how much its state moves with its
input):

    python benchmarks/slow_start/run.py [--epochs 15] [--seeds 0 1 2] [--out DIR]

Measured (two seeds, 10 epochs; benchmarks/results/slow_start/): the LRC's state
response is 0.0007-0.003 against GatedLeaky's 0.76, and every LRC variant stays at
chance while GatedLeaky learns the task in three epochs.
"""

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
import types

import jax.numpy as jnp
import jax.random as jr
import numpy as np

import lrc_toolkit as lt
from lrc_toolkit.models import LrcSSM
from lrc_toolkit.training import DEFAULT_PRESET, fit


sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scp1")
)
from scp1_neurons import GatedLeaky  # noqa: E402  (the custom-neuron guide's neuron)


T, FREQS = 128, (1 / 32, 1 / 20)  # cycles per sample; ~4 and ~6 cycles per sequence


def make_split(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    f = np.asarray(FREQS)[y][:, None]
    t = np.arange(T)[None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    amp = rng.uniform(0.8, 1.2, (n, 1))
    x = amp * np.sin(2 * np.pi * f * t + phase) + 0.1 * rng.normal(size=(n, T))
    return types.SimpleNamespace(
        x=x[..., None].astype(np.float32),
        y=y.astype(np.int32),
        mask=np.ones((n, T), bool),
    )


VARIANTS = {
    "reference init, dt=1": dict(dt=1.0, init="reference"),
    "reference init, dt=0.1": dict(dt=0.1, init="reference"),
    "biophysical init, dt=1": dict(dt=1.0, init="biophysical"),
    "biophysical init, dt=0.1": dict(dt=0.1, init="biophysical"),
    "GatedLeaky (guide's neuron), dt=1": dict(dt=1.0, init=None),
}


def run(name, settings, seed, epochs, splits):
    if settings["init"] is None:
        neuron = GatedLeaky
    else:
        neuron = functools.partial(lt.LRC, init=settings["init"])
    model = LrcSSM(
        1,
        2,
        hidden_size=16,
        state_size=16,
        num_blocks=2,
        neuron=neuron,
        dt=settings["dt"],
        dtype=jnp.float32,
        key=jr.key(seed),
    )
    config = dataclasses.replace(
        DEFAULT_PRESET.train, epochs=epochs, patience=epochs, seed=seed
    )
    start = time.perf_counter()
    result = fit(model, *splits, config=config, progress=False)
    return {
        "variant": name,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "val_loss": [h["val_loss"] for h in result.history],
        "val_accuracy": [h["val_accuracy"] for h in result.history],
        "test_accuracy": result.test_metrics["accuracy"],
    }


def state_response(seed: int = 0, D: int = 16, T: int = 512) -> dict[str, float]:
    """How much each initial neuron's state moves with its input: the standard
    deviation over time of its states (after 100 steps of settling), averaged over
    neurons, driven by N(0, 1) inputs (what a LayerNorm hands the liquid layer)."""
    u = jr.normal(jr.key(seed + 1), (T, D))
    out = {}
    for name, settings in VARIANTS.items():
        if settings["init"] is None:
            neuron = GatedLeaky(D, D, key=jr.key(seed))
        else:
            neuron = lt.LRC(D, D, init=settings["init"], key=jr.key(seed))
        states = lt.solve(
            neuron, jnp.zeros(D), u, dt=settings["dt"], solver=lt.Sequential()
        ).states[100:]
        out[name] = float(jnp.mean(jnp.std(states, axis=0)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="benchmarks/results/slow_start")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    response = state_response()
    for name, value in response.items():
        print(f"{name:34s} state response at initialisation: {value:.4f}")
    records = []
    for seed in args.seeds:
        splits = [make_split(n, 100 * seed + i) for i, n in enumerate((256, 64, 128))]
        for name, settings in VARIANTS.items():
            r = run(name, settings, seed, args.epochs, splits)
            records.append(r)
            print(
                f"{name:28s} seed {seed}: val loss by epoch "
                + " ".join(f"{v:.2f}" for v in r["val_loss"])
                + f"; test acc {100 * r['test_accuracy']:.1f} % ({r['seconds']:.0f} s)",
                flush=True,
            )
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"state_response": response, "runs": records}, f, indent=1)
    plot(records, os.path.join(args.out, "slow_start.png"))
    marks = sorted({1, min(5, args.epochs), args.epochs})
    print(
        "\n| variant | state response | val. loss after "
        + " / ".join(map(str, marks))
        + " epochs | test acc. % |"
    )
    print("|---|---|---|---|")
    for name in VARIANTS:
        rs = [r for r in records if r["variant"] == name]
        loss = np.mean([r["val_loss"] for r in rs], axis=0)
        picks = [loss[i - 1] for i in marks]
        acc = [100 * r["test_accuracy"] for r in rs]
        print(
            f"| {name} | {response[name]:.4f} | {' / '.join(f'{v:.2f}' for v in picks)} "
            f"| {np.mean(acc):.1f} ± {np.std(acc):.1f} |"
        )


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in VARIANTS:
        rs = [r for r in records if r["variant"] == name]
        loss = np.mean([r["val_loss"] for r in rs], axis=0)
        ax.plot(np.arange(1, len(loss) + 1), loss, label=name)
    ax.set(
        xlabel="epoch",
        ylabel="validation cross-entropy (mean over seeds)",
        title="synthetic frequency task, H = D = 16",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""One LrcSSM training step (forward + gradient + `optax` clip(1.0) + Adam, jitted,
batch 4) in seconds per 1000 steps, on the paper's SCP1 and EthanolConcentration
presets; optionally alternated with the reference implementation's model, and a
breakdown of where our step's time goes.

    python benchmarks/train_step.py [--preset SCP1 EthanolConcentration]
        [--rounds 7] [--steps 5] [--reference PATH] [--profile] [--out DIR]

`--reference PATH` imports the reference implementation's model and training step
(`SingleScaleGRU` and `update_step` of `experiments/lrc_ssm/run_train.py`, with
its quasi-DEER solver `elk/algs/deer.py`) from a local checkout of
https://github.com/MoniFarsang/LrcSSM (nothing of it is copied here). Its
training-only imports that the step does not use (wandb, torch, pytorch-lightning,
its data module, flax's GRU cell) are replaced by empty stand-ins, and the global
JAX flags it sets on import (`jax_enable_x64`, `jax_debug_nans`) are reset to
JAX's defaults, so both models run in float32 without NaN debugging, as ours
does. Its configuration matches ours: the same H, D, number of blocks, one-layer
MLPs of width H, batch 4, `--quasi` (its diagonal Newton), ReLU and weight-free
LayerNorms (its defaults; ours are GELU and affine LayerNorms).

Contenders: `ours` (LrcSSM's defaults: `ParallelNewton()`, GELU, affine
LayerNorms), `ours_reference_arch` (LrcSSM with the reference's architecture
choices: ReLU, He-uniform MLPs, weight-free LayerNorms, residual on the normalised
input), with `--sequential` `ours_sequential` (`solver=Sequential()`, what `Auto()`
picks on a CPU), and with `--reference` the reference's own step, and `ours_0.2_defaults` (the paper's LRC
initialisation and no learned time scales: the cost of the 0.3 defaults is the
ratio of `ours` to it).

Contenders are compiled and warmed up first, then timed in rounds, each round
running `--steps` steps of every contender in turn (the machine is shared: quote
the ratios, which are measured in the same rounds). Writes
`<out>/train_step.csv` (and `<out>/train_step_profile.csv` with `--profile`).
"""

import argparse
import dataclasses
import functools
import importlib
import statistics
import sys
import time
import types
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from _common import machine, positive, RESULTS, write_csv

import lrc_toolkit as lt
from lrc_toolkit.models import DEFAULTS_0_2, LrcSSM


@dataclasses.dataclass(frozen=True)
class Config:
    input_size: int
    num_classes: int
    hidden_size: int
    state_size: int
    num_blocks: int
    length: int
    learning_rate: float
    batch: int = 4


PRESETS = {
    "SCP1": Config(6, 2, 64, 16, 2, 896, 1e-3),
    "EthanolConcentration": Config(2, 4, 128, 16, 2, 1751, 1e-4),
}


def data(c: Config, seed: int = 0):
    kx, ky = jr.split(jr.key(seed))
    x = jr.normal(kx, (c.batch, c.length, c.input_size), jnp.float32)
    y = jr.randint(ky, (c.batch,), 0, c.num_classes)
    return x, y


def optimiser(c: Config):
    return optax.chain(
        optax.clip_by_global_norm(1.0), optax.adam(learning_rate=c.learning_rate)
    )


# LrcSSM's options that reproduce the reference's architecture (ReLU MLPs with
# He-uniform weights, weight-free LayerNorms, residual on the normalised input).
REFERENCE_ARCHITECTURE = dict(
    activation="relu", norm_affine=False, residual="normalised", init="he_uniform"
)


def ours(c: Config, solver=None, seed: int = 0, **options):
    """Our model and jitted training step: `step(state, x, y) -> (state, loss)`."""
    kwargs = dict(options) if solver is None else dict(options, solver=solver)
    model = LrcSSM(
        c.input_size,
        c.num_classes,
        hidden_size=c.hidden_size,
        state_size=c.state_size,
        num_blocks=c.num_blocks,
        dtype=jnp.float32,
        key=jr.key(seed),
        **kwargs,
    )
    optim = optimiser(c)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    params = jax.tree.map(
        jnp.copy, params
    )  # `step` donates them; `model` keeps its own
    opt_state = optim.init(params)

    def loss_fn(params, x, y):
        logits = jax.vmap(eqx.combine(params, static))(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, x, y):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optim.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step, (params, opt_state), (model, loss_fn)


def _stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules.setdefault(name, module)
    return module


def import_reference(path: Path):
    """`run_train` of the reference checkout at `path`, its unused training-only
    imports stubbed, JAX's global flags restored afterwards."""
    path = Path(path).resolve()
    folder = path / "experiments" / "lrc_ssm"
    if not (folder / "run_train.py").exists():
        raise SystemExit(
            f"--reference {path}: no experiments/lrc_ssm/run_train.py there; pass a "
            "checkout of https://github.com/MoniFarsang/LrcSSM."
        )
    for name in ("wandb", "torch", "pytorch_lightning", "datamodule"):
        try:
            __import__(name)
        except ImportError:
            _stub(name, DataModule=None, LightningDataModule=object, Tensor=object)
    try:
        import flax.linen  # noqa: F401
    except ImportError:
        linen = _stub("flax.linen", GRUCell=None)
        linen.activation = _stub(
            "flax.linen.activation", sigmoid=jax.nn.sigmoid, tanh=jnp.tanh
        )
        _stub("flax", linen=linen)
    # `from jax._src import prng` (for the annotation `prng.PRNGKeyArray`): gone
    # from newer JAX versions; the annotation means a key array.
    src = importlib.import_module("jax._src")
    if not hasattr(src, "prng"):
        try:
            importlib.import_module("jax._src.prng")
        except ImportError:
            src.prng = types.SimpleNamespace(PRNGKeyArray=jax.Array)
    for p in (str(path), str(folder)):
        if p not in sys.path:
            sys.path.insert(0, p)
    x64, nans = jax.config.jax_enable_x64, jax.config.jax_debug_nans
    import run_train  # noqa: PLC0415

    jax.config.update("jax_enable_x64", x64)
    jax.config.update("jax_debug_nans", nans)
    # Its `rollout` is jitted with the whole model (arrays included) as a static
    # argument, which current JAX refuses (tracers are not hashable). Under the
    # jitted training step an inner jit is inlined anyway: call it unjitted.
    run_train.rollout = getattr(run_train.rollout, "__wrapped__", run_train.rollout)
    # Its solver calls `jnp.clip(y, a_min=..., a_max=...)`, keywords that current
    # JAX renamed: give its module a `jnp` whose `clip` accepts them.
    deer = sys.modules["elk.algs.deer"]
    deer.jnp = _NumpyWithOldClip("jax.numpy")
    return run_train


class _NumpyWithOldClip(types.ModuleType):
    """`jax.numpy`, with `clip` also accepting the old `a_min`/`a_max` keywords."""

    def __getattr__(self, name):
        return getattr(jnp, name)

    @staticmethod
    def clip(a, a_min=None, a_max=None, **kwargs):
        return jnp.clip(a, kwargs.pop("min", a_min), kwargs.pop("max", a_max))


def reference(c: Config, path: Path, seed: int = 0):
    """The reference model and its own jitted `update_step`."""
    rt = import_reference(path)
    model = rt.SingleScaleGRU(
        ninp=c.input_size,
        nchannel=1,
        nstate=c.state_size,
        nlayer=c.num_blocks,
        nclass=c.num_classes,
        key=jr.PRNGKey(seed),
        use_scan=False,
        quasi=True,
        ninp_enc=c.hidden_size,
        dtype=jnp.float32,
    )
    model = jax.tree.map(
        lambda a: a.astype(jnp.float32) if eqx.is_array(a) else a, model
    )
    # Its jitted step takes the non-array part of the model as a static (hashed)
    # argument; with current Equinox a module holding lists is not hashable, so
    # its lists of layers become tuples (indexing is unchanged).
    for name in ("grus", "mlps", "norms"):
        value = getattr(model, name)
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        model = eqx.tree_at(lambda m, name=name: getattr(m, name), model, value)
    params, static = eqx.partition(model, eqx.is_array)
    optim = optimiser(c)
    opt_state = optim.init(params)
    y0 = jnp.zeros((c.batch, c.state_size), jnp.float32)
    guess = jnp.zeros((c.batch, c.length, c.state_size), jnp.float32)

    def step(state, x, y):
        params, opt_state = state
        params, opt_state, loss, *_ = rt.update_step(
            params=params,
            static=static,
            optimizer=optim,
            opt_state=opt_state,
            batch=(x, y),
            y0=y0,
            yinit_guess=guess,
            classification=True,
        )
        return (params, opt_state), loss

    return step, (params, opt_state)


def time_steps(contenders, x, y, rounds, steps):
    """Compile + warm up each `(step, state)`, then `rounds` rounds of `steps`
    steps of every contender in turn. Returns seconds per step, one per round."""
    states = {}
    for name, (step, state) in contenders.items():
        state, loss = step(state, x, y)
        state, loss = step(state, x, y)
        jax.block_until_ready(loss)
        if not jnp.isfinite(loss):
            raise AssertionError(f"{name}: non-finite loss {loss}")
        states[name] = state
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (step, _) in contenders.items():
            state = states[name]
            t0 = time.perf_counter()
            for _ in range(steps):
                state, loss = step(state, x, y)
            jax.block_until_ready((state, loss))
            times[name].append((time.perf_counter() - t0) / steps)
            states[name] = state
    return times


def run(preset, args):
    c = PRESETS[preset]
    x, y = data(c)
    contenders = {"ours": ours(c)[:2]}
    # The 0.2 defaults: the paper's LRC initialisation, no learned time scales (the
    # 0.3 defaults' cost target: a step at most 1.1x this one).
    contenders["ours_0.2_defaults"] = ours(c, **DEFAULTS_0_2)[:2]
    contenders["ours_reference_arch"] = ours(c, **REFERENCE_ARCHITECTURE)[:2]
    if args.sequential:
        contenders["ours_sequential"] = ours(c, lt.Sequential())[:2]
    if args.reference is not None:
        contenders["reference"] = reference(c, args.reference)
    times = time_steps(contenders, x, y, args.rounds, args.steps)
    base = statistics.median(times["ours"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            dict(
                preset=preset,
                T=c.length,
                H=c.hidden_size,
                D=c.state_size,
                blocks=c.num_blocks,
                batch=c.batch,
                contender=name,
                s_per_1000_steps=1e3 * med,
                min_s_per_1000=1e3 * min(ts),
                ratio_to_ours=med / base,
            )
        )
    return rows


# --- where our step's time goes ---------------------------------------------------


def profile(preset, args):
    """Each part of our training step as its own jitted forward + gradient (a
    random linear functional of its output), timed interleaved with the whole
    step."""
    c = PRESETS[preset]
    x, y = data(c)
    step, state, (model, loss_fn) = ours(c)
    # `step` donates its state: the parts below use copies.
    params, opt_state = jax.tree.map(jnp.copy, state)
    holder = [state]

    def whole_step():
        holder[0], loss = step(holder[0], x, y)
        return loss

    optim = optimiser(c)
    B, T, H, D = c.batch, c.length, c.hidden_size, c.state_size
    key = iter(jr.split(jr.key(3), 16))
    h = jr.normal(next(key), (B, T, H), jnp.float32)
    s = jr.normal(next(key), (B, T, D), jnp.float32)
    block = model.blocks[0]

    def grad_of(f, *args):
        """jitted value-and-grad of sum(w * f(*args)) w.r.t. every inexact leaf."""
        out = eqx.filter_eval_shape(f, *args)
        w = jr.normal(next(key), out.shape, out.dtype)
        g = eqx.filter_jit(
            eqx.filter_grad(lambda a: jnp.sum(w * f(*a)))
        )  # grad w.r.t. modules and arrays
        return functools.partial(g, args)

    def per_step(m, v):
        return jax.vmap(jax.vmap(m))(v)

    newton = lt.ParallelNewton()
    x0 = jnp.zeros((D,), jnp.float32)
    dt = jnp.ones((T,), jnp.float32)

    def solve_validated(n, u):
        return jax.vmap(lambda u: lt.solve(n, x0, u, solver=newton, throw=False))(
            u
        ).states

    def solve_run(n, u):
        run = lambda u: newton.run(n, x0, u, dt, jnp.cumsum(dt), lt.Euler(), None)
        return jax.vmap(run)(u).states

    def stand_in(m, x):
        """The model with each liquid layer replaced by its input's first D
        channels: everything but the liquid layers."""

        def one(x):
            h = jax.vmap(m.encoder)(x)
            for b in m.blocks:
                u = jax.vmap(b.norm_in)(h)
                h = jax.vmap(b.norm_out)(h + jax.vmap(b.mlp)(u[:, :D]))
            return jnp.mean(jax.vmap(m.decoder)(h), axis=0)

        return jax.vmap(one)(x)

    grads = jax.grad(loss_fn)(params, x, y)
    update = jax.jit(lambda g, o, p: optim.update(g, o, p))
    parts = {
        "whole step (forward + gradient + clip + Adam)": (
            whole_step,
            "everything",
        ),
        "forward + gradient": (
            functools.partial(jax.jit(jax.grad(loss_fn)), params, x, y),
            "the model, no optimiser",
        ),
        "forward only": (
            functools.partial(jax.jit(loss_fn), params, x, y),
            "the model's loss",
        ),
        "optimiser (clip + Adam)": (
            functools.partial(update, grads, opt_state, params),
            "optax update on the gradients",
        ),
        "model without liquid layers (stand-in)": (
            grad_of(stand_in, model, x),
            "encoder, LayerNorms, GELU MLPs, decoder; forward + gradient",
        ),
        "encoder MLP": (grad_of(per_step, model.encoder, x), "P -> H -> H"),
        f"block MLP (x{c.num_blocks})": (
            grad_of(per_step, block.mlp, s),
            "D -> H -> H",
        ),
        f"LayerNorm (x{2 * c.num_blocks})": (
            grad_of(per_step, block.norm_in, h),
            "affine",
        ),
        "decoder MLP": (
            grad_of(per_step, model.decoder, h),
            "H -> H -> classes",
        ),
        "GELU on (B, T, H)": (grad_of(jax.nn.gelu, h), "tanh approximation"),
        "ReLU on (B, T, H)": (grad_of(jax.nn.relu, h), "the reference's activation"),
        f"liquid layer, solve() (x{c.num_blocks})": (
            grad_of(solve_validated, block.neuron, h),
            "ParallelNewton + fixed-point VJP, with solve's checks",
        ),
        f"liquid layer, solver.run (x{c.num_blocks})": (
            grad_of(solve_run, block.neuron, h),
            "the same without the argument checks",
        ),
    }
    times = time_interleaved_calls({k: f for k, (f, _) in parts.items()}, args.rounds)
    base = statistics.median(times["whole step (forward + gradient + clip + Adam)"])
    return [
        dict(
            preset=preset,
            part=name,
            ms=1e3 * statistics.median(ts),
            share_of_step=statistics.median(ts) / base,
            what=parts[name][1],
        )
        for name, ts in times.items()
    ]


def time_interleaved_calls(fns, rounds):
    for f in fns.values():
        jax.block_until_ready(f())
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t0)
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", nargs="*", choices=list(PRESETS), default=list(PRESETS))
    p.add_argument("--rounds", type=positive, default=7)
    p.add_argument("--steps", type=positive, default=5, help="steps per round")
    p.add_argument("--reference", type=Path, help="a checkout of MoniFarsang/LrcSSM")
    p.add_argument(
        "--sequential", action="store_true", help="also time Sequential() in ours"
    )
    p.add_argument("--profile", action="store_true", help="break our step down")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    print(machine())
    rows, prof = [], []
    for preset in args.preset:
        new = run(preset, args)
        rows += new
        for r in new:
            print(
                f"{preset:<22} {r['contender']:<16} {r['s_per_1000_steps']:7.1f} s / "
                f"1000 steps  ({r['ratio_to_ours']:.2f}x ours)",
                flush=True,
            )
        if args.profile:
            new = profile(preset, args)
            prof += new
            for r in new:
                print(
                    f"  {r['part']:<48} {r['ms']:8.2f} ms  "
                    f"{100 * r['share_of_step']:5.1f} % of the step   {r['what']}",
                    flush=True,
                )
    write_csv(args.out / "train_step.csv", rows)
    if prof:
        write_csv(args.out / "train_step_profile.csv", prof)
    return rows


if __name__ == "__main__":
    main()

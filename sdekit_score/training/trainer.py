"""Training a score model: DSM or the hybrid DSM + adversarial objective, with EMA and checkpoints.

``train(config, data, out_dir)`` builds everything from a :class:`TrainConfig` (so a checkpoint,
which stores the config as a plain dict, can rebuild its model: :func:`load_checkpoint`), trains,
and returns the EMA model as a score function.

Reproducibility: the model is initialised from ``config.seed``; the data order of epoch ``e`` comes
from a generator seeded with ``(seed, e)``; times and noise come from one ``torch.Generator``;
dropout draws from torch's default generators, which run on a private state (seeded, saved in
checkpoints, and restored afterwards, so the caller's global RNG is left untouched). A run resumed
from a checkpoint therefore continues exactly as the uninterrupted run would have.

Optimisation follows the papers: Adam with ``betas = (0.9, 0.999)`` and ``lr = 2e-4`` for DSM;
``betas = (0, 0.9)`` and ``lr = 1e-4`` for the score network under the hybrid objective, whose
critic has its own Adam (same settings) and takes one step per score step.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from sdekit.checks import one_of
from sdekit.distributed import describe, write_atomically
from sdekit.errors import InputTypeError, InputValueError
from sdekit_score.sampling.precision import AMP_DTYPES
from sdekit_score.sampling.processes import PROCESSES, ForwardProcess, make_process
from sdekit_score.sampling.scores import ScoreModel
from sdekit_score.training.losses import WEIGHTINGS, dsm_loss, hybrid_loss
from sdekit_score.training.nets import MLP, Discriminator, MLPDiscriminator, UNet

__all__ = [
    "TrainConfig",
    "TrainResult",
    "build_model",
    "build_process",
    "checkpoint_file",
    "latest_checkpoint",
    "load_checkpoint",
    "register_net",
    "train",
]

NETS: dict[str, Callable[..., nn.Module]] = {"unet": UNet, "mlp": MLP}
_BUILT_IN = frozenset(NETS)
_CHECKPOINT_GLOB = "checkpoint_*.pt"
# Changing these does not change the run, so a run may be resumed with other values.
_RESUMABLE_CHANGES = ("steps", "checkpoint_every", "keep_checkpoints")


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint as a plain dict.

    Model: ``net`` (``"unet"`` or ``"mlp"``) built with ``net_kwargs`` (the MLP needs ``dim``),
    ``process`` (``"vp"``, ``"subvp"``, ``"ve"``, ``"edm"``) built with ``process_kwargs``, and the
    :class:`~sdekit_score.sampling.scores.ScoreModel` convention ``output`` / ``conditioning``.

    Objective: ``"dsm"`` or ``"hybrid"`` (DSM + ``adv_weight`` times the adversarial loss, critic
    built with ``disc_kwargs``); ``weighting`` of DSM; ``levels``: train on ``L`` discrete noise
    levels ``sigma(t_i)`` at equally spaced times from ``T`` to ``eps`` (geometric sigmas for VE)
    instead of continuous times.

    Optimisation: ``steps`` (total, counting those before a resume), ``batch_size``; ``lr`` and
    ``betas`` default by objective (see the module docstring); the critic's ``disc_lr`` and
    ``disc_betas``; ``grad_clip`` (max global gradient norm, ``None`` for none); ``ema_decay``
    (warmed up: at step ``k`` the decay is ``min(ema_decay, (1 + k)/(10 + k))``, so that a short
    run's EMA is not mostly its initial weights: 55% of them after 600 steps at 0.999 without);
    ``amp``: ``"bf16"``, ``"fp16"`` or ``"none"``, used on CUDA only (CPU trains in float32).

    Bookkeeping: ``seed``; a checkpoint every ``checkpoint_every`` steps and at the end, keeping
    the newest ``keep_checkpoints``.
    """

    net: str = "unet"
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    process: str = "vp"
    process_kwargs: dict[str, Any] = field(default_factory=dict)
    output: str = "noise"
    conditioning: str = "999t"
    objective: str = "dsm"
    weighting: str = "sigma2"
    levels: int | None = None
    adv_weight: float = 1.0
    disc_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 10_000
    batch_size: int = 128
    lr: float | None = None
    betas: tuple[float, float] | None = None
    disc_lr: float = 1e-4
    disc_betas: tuple[float, float] = (0.0, 0.9)
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    amp: str = "bf16"
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if self.net not in NETS:
            raise InputValueError(
                f"net={self.net!r}: choose one of {', '.join(NETS)}, or register a network of "
                f"your own with register_net(name, factory)"
            )
        one_of("process", self.process, PROCESSES)
        one_of("objective", self.objective, ("dsm", "hybrid"))
        one_of("weighting", self.weighting, WEIGHTINGS)
        one_of("amp", self.amp, AMP_DTYPES)
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < (0 if name == "steps" else 1):
                kind = (
                    "non-negative (0: the model as initialised)" if name == "steps" else "positive"
                )
                raise InputValueError(f"{name} must be {kind}, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip is not None and not _finite(self.grad_clip, above=0):
            raise InputValueError(
                f"grad_clip must be a positive finite gradient norm, or None for no clipping, "
                f"got {self.grad_clip!r} (0 would freeze the model, a negative value reverse it)"
            )
        adversarial = self.objective == "hybrid"
        # the critic's settings only where there is a critic (a DSM run's are unused, and
        # checkpoints of DSM runs hold whatever was given)
        for name in ("lr", "disc_lr") if adversarial else ("lr",):
            value = getattr(self, name)
            if (value is not None or name == "disc_lr") and not _finite(value, above=0):
                raise InputValueError(f"{name} must be a positive learning rate, got {value!r}")
        if adversarial and not _finite(self.adv_weight, above=None):
            raise InputValueError(
                f"adv_weight must be a finite number >= 0 (the adversarial term's weight; a "
                f"negative one makes the score network maximise it), got {self.adv_weight!r}"
            )
        for name in ("betas", "disc_betas") if adversarial else ("betas",):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, tuple | list)
                and len(value) == 2
                and all(_finite(b, above=None) and b < 1 for b in value)
            ):
                raise InputValueError(f"{name} must be two numbers in [0, 1), got {value!r}")
        if self.levels is not None and (
            isinstance(self.levels, bool)
            or not isinstance(self.levels, numbers.Integral)
            or self.levels < 1
        ):
            raise InputValueError(f"levels must be None or a positive int, got {self.levels!r}")
        if self.lr is None:
            self.lr = 1e-4 if adversarial else 2e-4
        self.betas = tuple(self.betas or ((0.0, 0.9) if adversarial else (0.9, 0.999)))
        self.disc_betas = tuple(self.disc_betas)
        self._as_builtin_numbers()

    def _as_builtin_numbers(self) -> None:
        """NumPy's numbers as Python's: the config is stored in checkpoints, which load only
        builtin types (``torch.load(weights_only=True)``), and Adam takes float betas only."""

        def plain(value):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                return value
            return int(value) if isinstance(value, numbers.Integral) else float(value)

        for name in ("lr", "disc_lr", "adv_weight", "grad_clip", "ema_decay", "levels"):
            setattr(self, name, plain(getattr(self, name)))
        self.betas = tuple(plain(b) for b in self.betas)
        self.disc_betas = tuple(plain(b) for b in self.disc_betas)


def _finite(value, *, above: float | None) -> bool:
    """A real number (not a bool), finite, ``> above`` (``>= 0`` for ``above=None``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    return value > above if above is not None else value >= 0


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``score_fn``: the EMA model, a :class:`~sdekit_score.sampling.scores.ScoreModel` in eval mode;
    ``history``: per-step losses by name (``"loss"``; for the hybrid objective also ``"dsm"``,
    ``"generator"`` and ``"discriminator"``), from step 1 even after a resume; ``step``: the
    number of steps done; ``checkpoint``: the last checkpoint written (``None`` without
    ``out_dir``).
    """

    score_fn: ScoreModel
    history: dict[str, list[float]]
    step: int
    checkpoint: Path | None


def build_process(config: TrainConfig) -> ForwardProcess:
    """The forward process ``config.process`` (a key of :data:`~sdekit_score.sampling.processes.PROCESSES`)
    built with ``config.process_kwargs``."""
    return make_process(config.process, **config.process_kwargs)


def register_net(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``TrainConfig(net=name, net_kwargs=...)`` train ``factory(**net_kwargs)``: a network
    of your own, called as ``net(x, c)`` (:class:`~sdekit_score.sampling.scores.ScoreModel`),
    with the trainer's EMA, checkpoints and exact resume. The checkpoint stores the name and
    ``net_kwargs``: register the same factory under the same name before
    :func:`load_checkpoint` in another process. Under the hybrid objective its critic is the
    image critic for data ``(N, C, H, W)`` and the MLP critic for data ``(N, D)``.
    """
    if not isinstance(name, str) or not name:
        raise InputTypeError(f"register_net: name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise InputTypeError(
            f"register_net: factory must be callable as factory(**net_kwargs) -> nn.Module, "
            f"got {type(factory).__name__}"
        )
    if name in _BUILT_IN:
        raise InputValueError(f"register_net: {name!r} is a built-in network; choose another name")
    NETS[name] = factory


def build_model(config: TrainConfig) -> ScoreModel:
    """The score model of ``config``, initialised from ``config.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = NETS[config.net](**config.net_kwargs)
    return ScoreModel(net, build_process(config), config.output, config.conditioning)


def _build_discriminator(config: TrainConfig, event_shape: tuple[int, ...]) -> nn.Module:
    """The critic matching ``config.net``: a CNN for the U-Net, an MLP for the MLP; for a
    registered network, by the data's ``event_shape`` (images or vectors)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        if config.net == "mlp":
            return MLPDiscriminator(config.net_kwargs["dim"], **config.disc_kwargs)
        if config.net == "unet":
            return Discriminator(config.net_kwargs.get("channels", 1), **config.disc_kwargs)
        if len(event_shape) == 3:
            return Discriminator(event_shape[0], **config.disc_kwargs)
        if len(event_shape) == 1:
            return MLPDiscriminator(event_shape[0], **config.disc_kwargs)
        raise InputValueError(
            f"the hybrid objective's critic takes images (C, H, W) or vectors (D,); data items "
            f"of shape {event_shape} have neither: train with objective='dsm'"
        )


def _as_tensor(data: torch.Tensor | Dataset) -> torch.Tensor:
    """The whole data set as one tensor ``(N, *event)`` (of pairs, the first items)."""
    if isinstance(data, TensorDataset):
        data = data.tensors[0]
    elif isinstance(data, Dataset):
        # by index, not by iteration: iterating a map-style data set stops only at an IndexError
        # (one that wraps its index around never ends)
        if not hasattr(data, "__len__"):
            raise InputTypeError(
                f"data {type(data).__name__} has no len(): pass a tensor (N, *event) or a "
                f"map-style Dataset"
            )
        items = [_item(data[i]) for i in range(len(data))]
        if not items:
            raise InputValueError("data is empty")
        data = torch.stack(items)
    elif isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if not isinstance(data, torch.Tensor):
        raise InputTypeError(
            "data must be a floating tensor (N, *event) or a Dataset of such items "
            f"(or of (item, label) pairs), got {type(data).__name__}"
        )
    if not data.is_floating_point():
        raise InputTypeError(
            f"data is {data.dtype}: training needs floating data in the process's data range, "
            f"e.g. images as data.float() / 127.5 - 1 for [-1, 1] (VP) or / 255 for [0, 1] (VE)"
        )
    if data.dim() < 2:
        raise InputValueError(
            f"data of shape {tuple(data.shape)}: it must be (N, *event), one row per item; for "
            f"scalar data use data[:, None]"
        )
    if len(data) == 0:
        raise InputValueError(f"data of shape {tuple(data.shape)} is empty: nothing to train on")
    if not bool(torch.isfinite(data).all()):
        raise InputValueError("data holds NaN or Inf values: training on them gives a NaN loss")
    return data.detach()


def _item(item) -> torch.Tensor:
    """A data set's item as a tensor: the first of an ``(item, label)`` pair, numpy converted."""
    if isinstance(item, tuple | list):
        item = item[0]
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(item)
    if not isinstance(item, torch.Tensor):
        raise InputTypeError(
            f"a data set item is {type(item).__name__}: items must be tensors (or numpy arrays), "
            f"or (item, label) pairs of them"
        )
    return item


def _batches(data: torch.Tensor, batch_size: int, seed: int, step: int) -> Iterator[torch.Tensor]:
    """Batches from ``step`` on, in epochs of ``N // batch_size`` shuffled by ``(seed, epoch)``."""
    per_epoch = len(data) // batch_size
    if per_epoch == 0:
        raise InputValueError(
            f"the data set has {len(data)} items, fewer than batch_size={batch_size}"
        )
    epoch, start = divmod(step, per_epoch)
    while True:
        epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch_seed))
        order = order.to(data.device)  # once per epoch, not a copy per batch
        for k in range(start, per_epoch):
            yield data[order[k * batch_size : (k + 1) * batch_size]]
        epoch, start = epoch + 1, 0


def _default_generators(device: torch.device) -> list[torch.Generator]:
    """The generators dropout draws from: the CPU's default one, and the CUDA device's."""
    generators = [torch.default_generator]
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        generators.append(torch.cuda.default_generators[index])
    return generators


@contextlib.contextmanager
def _private_rng(generators: list[torch.Generator], states: list[torch.Tensor]):
    """Run with ``generators`` in ``states``; put their previous states back afterwards."""
    previous = [g.get_state() for g in generators]
    try:
        for g, state in zip(generators, states, strict=True):
            g.set_state(state)
        yield
    finally:
        for g, state in zip(generators, previous, strict=True):
            g.set_state(state)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


class _Run:
    """The mutable state of one training run: modules, optimisers, RNG states, step and history."""

    def __init__(self, config: TrainConfig, device: torch.device, event_shape: tuple[int, ...]):
        self.config = config
        self.device = device
        self.model = build_model(config).to(device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.betas)
        self.discriminator = self.disc_optimizer = None
        if config.objective == "hybrid":
            self.discriminator = _build_discriminator(config, event_shape).to(device)
            self.disc_optimizer = torch.optim.Adam(
                self.discriminator.parameters(), lr=config.disc_lr, betas=config.disc_betas
            )
        amp = device.type == "cuda" and config.amp != "none"
        self.autocast_dtype = AMP_DTYPES[config.amp] if amp else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp and config.amp == "fp16")
        self.noise = torch.Generator(device).manual_seed(config.seed)
        self.rng_states = [
            torch.Generator(g.device).manual_seed(config.seed).get_state()
            for g in _default_generators(device)
        ]
        self.step = 0
        self.history: dict[str, list[float]] = {}
        self.data: dict[str, Any] | None = None  # what the run trains on: shape, dtype, SHA-256

    def modules(self) -> dict[str, Any]:
        """Everything with a ``state_dict``, by checkpoint key."""
        parts = {
            "model": self.model,
            "ema": self.ema,
            "optimizer": self.optimizer,
            "scaler": self.scaler,
        }
        if self.discriminator is not None:
            parts["discriminator"] = self.discriminator
            parts["disc_optimizer"] = self.disc_optimizer
        return parts

    def state_dict(self) -> dict[str, Any]:
        state = {name: part.state_dict() for name, part in self.modules().items()}
        state["config"] = dataclasses.asdict(self.config)
        state["step"] = self.step
        state["history"] = self.history
        state["rng"] = {"noise": self.noise.get_state(), "default": self.rng_states}
        state["data"] = self.data
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored, current = state["config"], dataclasses.asdict(self.config)
        changed = [
            k for k in current if k not in _RESUMABLE_CHANGES and stored.get(k) != current[k]
        ]
        if changed:
            raise InputValueError(
                f"the checkpoint was written by a run with a different config "
                f"({', '.join(changed)} differ): resume with the same config, or train into a new "
                "out_dir"
            )
        stored_data = state.get("data")  # absent from checkpoints of older versions
        if stored_data is not None and self.data is not None and stored_data != self.data:
            raise InputValueError(
                f"the checkpoint was trained on other data (shape {stored_data['tensor']}, "
                f"{stored_data['dtype']}, sha256 {stored_data['sha256'][:12]}…; now shape "
                f"{self.data['tensor']}, sha256 {self.data['sha256'][:12]}…): resume with the same "
                f"data, or train into a new out_dir"
            )
        for name, part in self.modules().items():
            part.load_state_dict(state[name])
        self.step = state["step"]
        self.history = state["history"]
        self.noise.set_state(state["rng"]["noise"])
        self.rng_states = state["rng"]["default"]

    def train_step(self, x0: torch.Tensor, levels: torch.Tensor | None) -> dict[str, float]:
        """One optimisation step; under the hybrid objective the critic steps alongside."""
        config, process = self.config, self.model.process
        options = dict(generator=self.noise, weighting=config.weighting, levels=levels)
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            if self.discriminator is None:
                loss = dsm_loss(self.model, process, x0, **options)
                parts = [(loss, self.optimizer, self.model)]
                losses = {"loss": loss}
            else:
                terms = hybrid_loss(
                    self.model,
                    process,
                    x0,
                    self.discriminator,
                    adv_weight=config.adv_weight,
                    **options,
                )
                parts = [
                    (terms.score, self.optimizer, self.model),
                    (terms.discriminator, self.disc_optimizer, self.discriminator),
                ]
                losses = {
                    "loss": terms.score,
                    "dsm": terms.dsm,
                    "generator": terms.generator,
                    "discriminator": terms.discriminator,
                }
        self._optimise(parts)
        done = self.step + 1
        _update_ema(self.ema, self.model, min(config.ema_decay, (1 + done) / (10 + done)))
        return {name: value.item() for name, value in losses.items()}

    def _optimise(self, parts: list[tuple[torch.Tensor, torch.optim.Optimizer, nn.Module]]) -> None:
        """Backpropagate each loss into its module only, clip, and step every optimiser."""
        for _, optimizer, _ in parts:
            optimizer.zero_grad(set_to_none=True)
        for loss, _, module in parts:
            self.scaler.scale(loss).backward(inputs=list(module.parameters()))
        for _, optimizer, module in parts:
            if self.config.grad_clip is not None:
                self.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
            self.scaler.step(optimizer)
        self.scaler.update()


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``out_dir``, or ``None`` if there is none."""
    paths = sorted(Path(out_dir).glob(_CHECKPOINT_GLOB))
    return paths[-1] if paths else None


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a file, the latest checkpoint if it is a training directory.

    Raises ``FileNotFoundError`` (with what to do) when there is neither.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(
                f"no checkpoint_*.pt in {path}: train one into it (`sdekit-score train --out DIR`)"
            )
        return found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def _write_checkpoint(out_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoint_<step>.pt`` atomically (temp file + ``os.replace``); prune old ones."""
    path = out_dir / f"checkpoint_{state['step']:09d}.pt"
    write_atomically(path, lambda f: torch.save(state, f))  # with the umask's permissions
    for old in sorted(out_dir.glob(_CHECKPOINT_GLOB))[:-keep]:
        old.unlink()
    return path


def _levels(
    config: TrainConfig, process: ForwardProcess, device: torch.device
) -> torch.Tensor | None:
    if config.levels is None:
        return None
    # evenly in the sampling view's time, as the training times (EDM: in log σ; evenly in σ
    # left nothing between 0.002 and 8.9 at ten levels)
    view = process.sampling_view()
    t = torch.linspace(view.T, view.eps, config.levels, device=device)
    if view is not process:
        t = process.noise_level_to_t(view.noise_level(t))
    return process.sigma(t)


def train(
    config: TrainConfig,
    data: torch.Tensor | Dataset,
    out_dir: str | os.PathLike | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the score model of ``config`` on ``data`` for ``config.steps`` steps in all.

    Args:
        config: the run (see :class:`TrainConfig`).
        data: a floating tensor ``(N, *event)`` or a data set of such items (or ``(item, label)``
            pairs, e.g. :func:`sdekit_score.evaluation.data.digits`), in ``process.data_range``. It is held in
            memory on ``device``.
        out_dir: where checkpoints go. If it already holds checkpoints of the same config and
            data, training resumes from the latest one (other data is refused: checkpoints record
            the data's shape, dtype and SHA-256). A loss that turns non-finite stops training
            before anything is written for that step.
        device: where to train; mixed precision (``config.amp``) is used on CUDA only.
        progress: show a tqdm progress bar with the loss.
        callback: ``callback(step, losses)`` after every step (and after its checkpoint, if any).
            An exception raised there stops training; calling :func:`train` again resumes.

    Returns a :class:`TrainResult` with the EMA model as the score function.
    """
    device = torch.device(device)
    data = _as_tensor(data)
    run = _Run(config, device, tuple(data.shape[1:]))
    _check_range(data, run.model.process)
    out = Path(out_dir) if out_dir is not None else None
    checkpoint = None
    if out is not None:
        run.data = describe(data)
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".checkpoint*.tmp"):  # of a run killed while writing
            stale.unlink(missing_ok=True)
        checkpoint = latest_checkpoint(out)
        if checkpoint is not None:
            run.load_state_dict(_read_checkpoint(checkpoint))
            if run.step > config.steps:
                warnings.warn(
                    f"{out} holds a checkpoint of step {run.step}, past steps={config.steps}: "
                    f"that model is returned untrained further (it is not cut back)",
                    stacklevel=2,
                )
    data = data.to(device)
    levels = _levels(config, run.model.process, device)
    batches = _batches(data, config.batch_size, config.seed, run.step)
    generators = _default_generators(device)
    with (
        _private_rng(generators, run.rng_states),
        tqdm(total=config.steps, initial=run.step, disable=not progress, desc="train") as bar,
    ):
        run.model.train()
        while run.step < config.steps:
            losses = run.train_step(next(batches), levels)
            if not all(math.isfinite(value) for value in losses.values()):
                kept = (
                    f"the checkpoint of step {checkpoint_step(checkpoint)} is kept"
                    if checkpoint
                    else ""
                )
                raise InputValueError(
                    f"the loss became non-finite at step {run.step + 1} ({losses}): lower lr (now "
                    f"{config.lr:g}) or check the data and options; nothing was written for this "
                    f"step{'; ' + kept if kept else ''}"
                )
            run.step += 1
            for name, value in losses.items():
                run.history.setdefault(name, []).append(value)
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss']:.4g}", refresh=False)
            if out is not None and (
                run.step % config.checkpoint_every == 0 or run.step == config.steps
            ):
                run.rng_states = [g.get_state() for g in generators]
                checkpoint = _write_checkpoint(out, run.state_dict(), config.keep_checkpoints)
            if callback is not None:
                callback(run.step, losses)
    return TrainResult(run.ema, run.history, run.step, checkpoint)


def load_checkpoint(
    path: str | os.PathLike, *, device: torch.device | str = "cpu", ema: bool = True
) -> ScoreModel:
    """The score model stored in a checkpoint, rebuilt from its config, in eval mode.

    ``path`` is a checkpoint file or a training directory (its latest checkpoint). ``ema=True``
    loads the EMA weights (the ones to sample with), ``ema=False`` the raw weights.
    """
    path = checkpoint_file(path)
    state = _read_checkpoint(path)
    weights = "ema" if ema else "model"
    missing = sorted({"config", weights} - state.keys()) if isinstance(state, dict) else None
    if missing != []:
        found = type(state).__name__ if missing is None else f"a dict without {missing}"
        raise InputValueError(
            f"{path} is not a checkpoint of sdekit_score's trainer (a dict with its config and "
            f"{weights} weights; found {found}): pass a checkpoint_*.pt that train wrote, or "
            f"its folder"
        )
    try:
        model = build_model(TrainConfig(**state["config"]))
    except TypeError as err:
        raise InputValueError(
            f"{path}: its config does not build a model ({err}): a checkpoint of another "
            f"version or program"
        ) from None
    model.load_state_dict(state[weights])
    if state.get("data") is not None:  # the shape of an item: what to sample
        model.event_shape = tuple(state["data"]["tensor"][1:])
    return model.to(device).eval()


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails anywhere in the unpickler
        older = [p for p in sorted(path.parent.glob(_CHECKPOINT_GLOB)) if p != path]
        if not path.match(_CHECKPOINT_GLOB):  # not one of a run's: nothing to delete
            advice = "pass a checkpoint_*.pt that train wrote, or its folder"
        elif older:
            advice = f"delete it to resume from {older[-1].name}"
        else:
            advice = "delete it (and train again)"
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputValueError(
            f"cannot read checkpoint {path} ({reason}): it is damaged or not a checkpoint "
            f"(a run killed while writing it?); {advice}"
        ) from None


def checkpoint_step(checkpoint: Path) -> int:
    """The training step a checkpoint file was written at (from its name)."""
    return int(checkpoint.stem.split("_")[-1])


def _check_range(data: torch.Tensor, process: ForwardProcess) -> None:
    """Warn about data well outside the process's range: its prior, levels and the hybrid
    objective's clamp assume it (images in [0, 255] give a loss of about 31)."""
    low, high = process.data_range
    margin = 0.1 * (high - low)
    found = (float(data.min()), float(data.max()))
    if found[0] < low - margin or found[1] > high + margin:
        warnings.warn(
            f"the data span [{found[0]:.3g}, {found[1]:.3g}] but the {type(process).__name__} "
            f"process expects data in [{low:g}, {high:g}]: scale the data into that range",
            stacklevel=3,
        )

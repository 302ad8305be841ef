"""diffusers models and schedulers as ``(score_fn, process)`` pairs for :func:`sdekit_score.sample`.

:func:`from_diffusers` needs no import of diffusers: it reads the scheduler's ``alphas_cumprod``
and config and calls the model. :func:`load_pretrained` reads a directory written by diffusers'
``save_pretrained`` and needs the ``diffusers`` extra (``pip install 'sdekit[diffusers]'``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from sdekit.batching import bcast
from sdekit.checks import one_of
from sdekit.errors import InputTypeError, InputValueError
from sdekit.extras import import_extra
from sdekit_score.sampling.precision import in_network_dtype
from sdekit_score.sampling.processes import VESDE, ForwardProcess, batch_time

from .processes import DiscreteVPProcess

__all__ = ["DiffusersScore", "from_diffusers", "is_diffusers_directory", "load_pretrained"]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_TYPES = ("discrete", "continuous")
# and "integer": a model with a learned time embedding (an nn.Embedding of the N training
# timesteps) is called at the nearest timestep, as DiscreteVPProcess's times map to them
CONDITIONINGS = (*TIMESTEP_TYPES, "integer")
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def from_diffusers(
    model: Callable, scheduler, *, timesteps: str | None = None
) -> tuple[DiffusersScore, ForwardProcess]:
    """The score and process of a diffusers model and the scheduler it was trained with.

    Args:
        model: a diffusers ``UNet2DModel`` or anything called as ``model(x, timesteps)`` that
            returns a tensor shaped like ``x``, an object with ``.sample``, or a tuple whose first
            entry is that tensor.
        scheduler: the training scheduler: one with ``alphas_cumprod`` and a ``prediction_type``
            (``DDPMScheduler``, ``DDIMScheduler``, ...; any β schedule) gives a
            :class:`~sdekit_score.adapters.DiscreteVPProcess`, exact at its timesteps (time
            ``t = (n + 1)/N`` for timestep ``n``; with ``timestep_type="continuous"`` and
            v-prediction the model is conditioned on ``0.25 log σ``, as diffusers'
            ``EulerDiscreteScheduler`` does; a model with a learned time embedding,
            ``time_embedding_type="learned"``, is called at the nearest training timestep);
            a ``ScoreSdeVeScheduler`` gives a
            :class:`~sdekit_score.sampling.VESDE` with its ``sigma_min``, ``sigma_max`` and
            ``sampling_eps`` (the model is called with ``sigma(t)`` and returns the score).
        timesteps: how a model of a scheduler with ``alphas_cumprod`` is conditioned, where
            its configs do not say (a plain ``nn.Module``): ``"discrete"`` (the timestep
            ``N t - 1`` as a float), ``"continuous"`` (``0.25 log σ``) or ``"integer"`` (the
            nearest training timestep as an index, for an ``nn.Embedding``). Default: from the
            scheduler's ``timestep_type`` and the model's ``time_embedding_type``.

    Returns:
        ``(score_fn, process)`` for :func:`sdekit_score.sample`. ``score_fn`` is an
        ``nn.Module`` holding ``model``, so sampling follows the model's device and dtype.
    """
    config = _config(scheduler)
    given_timesteps = None if timesteps is None else one_of("timesteps", timesteps, CONDITIONINGS)
    if hasattr(scheduler, "alphas_cumprod"):
        prediction = one_of(
            "scheduler prediction_type", config.get("prediction_type", "epsilon"), PREDICTION_TYPES
        )
        process = DiscreteVPProcess(scheduler.alphas_cumprod)
        timesteps = one_of(
            "scheduler timestep_type", config.get("timestep_type", "discrete"), TIMESTEP_TYPES
        )
        if timesteps == "continuous" and prediction != "v_prediction":
            timesteps = "discrete"  # as diffusers' EulerDiscreteScheduler: continuous v only
        learned = config.get("variance_type") in ("learned", "learned_range")
        if (
            timesteps == "discrete"
            and _config(model, required=False).get("time_embedding_type") == "learned"
        ):
            timesteps = "integer"  # an nn.Embedding of the training timesteps
        if given_timesteps is not None:
            timesteps = given_timesteps
        return DiffusersScore(model, process, prediction, timesteps, learned), process
    if {"sigma_min", "sigma_max", "sampling_eps"} <= set(config):
        if given_timesteps is not None:
            raise InputValueError(
                f"from_diffusers: timesteps={timesteps!r} is for schedulers with alphas_cumprod; "
                f"a {type(scheduler).__name__} model is called with the noise level sigma(t)"
            )
        process = VESDE(
            sigma_min=float(config["sigma_min"]),
            sigma_max=float(config["sigma_max"]),
            eps=float(config["sampling_eps"]),
        )
        return DiffusersScore(model, process, "score"), process
    raise InputTypeError(
        f"from_diffusers: {type(scheduler).__name__} is not a supported scheduler: pass the "
        f"scheduler the model was trained with, one with alphas_cumprod (DDPMScheduler, "
        f"DDIMScheduler, ...) or a ScoreSdeVeScheduler"
    )


class DiffusersScore(torch.nn.Module):
    r"""``score(x, t)`` from a diffusers model's output, by its prediction type.

    With ``x = alpha x0 + sigma z`` at time ``t``:

    ================  ===============================  ==================================
    prediction        the model returns                score
    ================  ===============================  ==================================
    ``epsilon``       ``z``                            ``-out / sigma``
    ``v_prediction``  ``v = alpha z - sigma x0``       ``-(alpha out + sigma x) / sigma``
    ``sample``        ``x0``                           ``(alpha out - x) / sigma²``
    ``score``         the score (``ScoreSdeVe``)       ``out``
    ================  ===============================  ==================================

    (``z = alpha v + sigma x`` recovers the noise from ``v`` since ``alpha² + sigma² = 1``.) With
    ``learned_variance`` (a scheduler's ``variance_type`` ``"learned"``/``"learned_range"``) the
    model's output has twice x's channels and the first half is the prediction. The
    model sees ``x`` unscaled and the timestep ``N t - 1`` of a
    :class:`~sdekit_score.adapters.DiscreteVPProcess` (with ``timesteps="continuous"``, the
    ``0.25 log(sigma/alpha)`` of diffusers' ``EulerDiscreteScheduler(timestep_type="continuous")``;
    with ``timesteps="integer"``, for a learned time embedding, the nearest of the ``N`` training
    timesteps as an index), or the noise level ``sigma(t)`` of a VE process.
    """

    wraps = "model"  # the network, for the samplers (see sampling.samplers._layers)

    def __init__(
        self,
        model: Callable,
        process: ForwardProcess,
        prediction: str,
        timesteps: str = "discrete",
        learned_variance: bool = False,
    ):
        super().__init__()
        if not callable(model):
            raise InputTypeError(f"model must be callable as model(x, t), got {model!r}")
        self.model, self.process = model, process
        self.prediction = one_of("prediction", prediction, (*PREDICTION_TYPES, "score"))
        self.timesteps = one_of("timesteps", timesteps, CONDITIONINGS)
        # a learned-variance model (improved DDPM) outputs twice x's channels, the second half
        # a variance for DDPM's sampler: the score takes the first half
        self.learned_variance = bool(learned_variance)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = batch_time(t, x)
        if t.dtype.itemsize < 4:  # timesteps 998 and 999 are one number in bfloat16
            t = t.float()
        if self.timesteps == "continuous":
            condition = 0.25 * torch.log(self.process.noise_level(t))
        elif isinstance(self.process, DiscreteVPProcess):
            condition = self.process.t_to_timestep(t)
            if self.timesteps == "integer":  # the nearest training timestep, as an index
                top = self.process.num_timesteps - 1
                condition = condition.round().clamp(0, top).long()
        else:
            condition = self.process.sigma(t)
        out = self.model(in_network_dtype(self.model, x), condition)
        out = _tensor(out, x, self.learned_variance).to(x.dtype)
        if self.prediction == "score":
            return out
        alpha, sigma = bcast(self.process.alpha(t), x), bcast(self.process.sigma(t), x)
        if self.prediction == "epsilon":
            return -out / sigma
        if self.prediction == "v_prediction":
            return -(alpha * out + sigma * x) / sigma
        return (alpha * out - x) / sigma**2

    @property
    def network_call(self) -> str:
        """How the model is called, for error messages."""
        hint = (
            " (a learned time embedding needs integer ones: from_diffusers(..., "
            "timesteps='integer'))"
            if self.timesteps != "integer"
            else ""
        )
        return f"model(x, timesteps) with timesteps of shape (batch,): {self.timesteps}{hint}"

    def extra_repr(self) -> str:
        return (
            f"process={self.process}, prediction={self.prediction!r}, timesteps={self.timesteps!r}"
        )


def _tensor(out, x: torch.Tensor, learned_variance: bool = False) -> torch.Tensor:
    if hasattr(out, "sample"):
        out = out.sample
    elif isinstance(out, tuple | list):
        out = out[0]
    doubled = isinstance(out, torch.Tensor) and out.ndim > 1 and out.shape[1] == 2 * x.shape[1]
    if learned_variance and doubled:
        out = out[:, : x.shape[1]]  # the prediction; the variance is a DDPM sampler's
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        hint = (
            " (twice x's channels: a learned-variance model, whose scheduler must say "
            "variance_type='learned' or 'learned_range')"
            if doubled
            else ""
        )
        raise InputValueError(
            f"the model returned {shape} for x of shape {tuple(x.shape)}: it must return a "
            f"tensor shaped like x (or an output with .sample){hint}"
        )
    return out


def _config(obj, required: bool = True) -> dict:
    """A diffusers object's config as a dict; not ``required`` (a model, which may be a plain
    callable), ``{}`` where it has none."""
    config = getattr(obj, "config", None)
    if config is None and not required:
        return {}
    if config is None:
        raise InputTypeError(
            f"from_diffusers: the scheduler must be a diffusers scheduler with a config, got "
            f"{type(obj).__name__}"
        )
    return dict(config)


# --------------------------------------------------------------------------- save_pretrained dirs


def is_diffusers_directory(path: str | Path) -> bool:
    """Whether ``path`` is a directory that diffusers' ``save_pretrained`` wrote: a pipeline
    (``model_index.json``) or a model (``config.json`` naming a ``_class_name``)."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        return True
    return "_class_name" in _read_json(path / "config.json", missing={})


def load_pretrained(
    path: str | Path, *, device: torch.device | str = "cpu"
) -> tuple[DiffusersScore, ForwardProcess, tuple[int, ...]]:
    """``(score_fn, process, event_shape)`` of a diffusers directory, without unpickling.

    ``path`` is a pipeline saved with ``save_pretrained`` (``model_index.json``, with ``unet/``
    and ``scheduler/``) or a model directory (``config.json``) with the training scheduler's
    ``scheduler_config.json`` beside it or in ``scheduler/``. The model class named in the
    config must be a diffusers model; its weights are read from
    ``diffusion_pytorch_model.safetensors`` with safetensors, or from
    ``diffusion_pytorch_model.bin`` with ``torch.load(weights_only=True)``, which refuses
    anything but tensors. The event shape is ``(in_channels, *sample_size)``.
    """
    diffusers = import_extra("diffusers", "diffusers", "diffusers", "loading a diffusers model")
    path = Path(path)
    model_dir, scheduler_dir = _components(path)
    config = _read_json(model_dir / "config.json")
    model_cls = _diffusers_class(diffusers, config, diffusers.ModelMixin, model_dir / "config.json")
    model = model_cls.from_config(config)
    model.load_state_dict(_weights(model_dir))
    model.to(device).eval()
    scheduler_config = _read_json(scheduler_dir / "scheduler_config.json")
    scheduler_cls = _diffusers_class(
        diffusers,
        scheduler_config,
        diffusers.SchedulerMixin,
        scheduler_dir / "scheduler_config.json",
    )
    score_fn, process = from_diffusers(model, scheduler_cls.from_config(scheduler_config))
    size = config.get("sample_size")
    if size is None or "in_channels" not in config:
        raise InputValueError(
            f"{model_dir / 'config.json'} has no in_channels/sample_size: cannot tell the shape "
            f"of a sample"
        )
    size = (size, size) if isinstance(size, int) else tuple(size)
    return score_fn, process, (int(config["in_channels"]), *map(int, size))


def _components(path: Path) -> tuple[Path, Path]:
    """The model's and the scheduler's directories inside ``path``."""
    if (path / "model_index.json").is_file():
        index = _read_json(path / "model_index.json")
        models = [name for name in ("unet", "transformer") if name in index]
        if not models or "scheduler" not in index:
            raise InputValueError(
                f"{path / 'model_index.json'} names no unet and scheduler: not a diffusion pipeline"
            )
        return path / models[0], path / "scheduler"
    for scheduler_dir in (path, path / "scheduler"):
        if (scheduler_dir / "scheduler_config.json").is_file():
            return path, scheduler_dir
    raise FileNotFoundError(
        f"no scheduler_config.json in {path} or {path / 'scheduler'}: save the training "
        f"scheduler beside the model (scheduler.save_pretrained(DIR)), since the noise schedule "
        f"decides what the model's output means"
    )


def _diffusers_class(diffusers, config: dict, base: type, where: Path) -> type:
    name = config.get("_class_name")
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InputValueError(f"{where}: _class_name={name!r} is not a diffusers {base.__name__}")
    return cls


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    safetensors, pickled = (model_dir / name for name in WEIGHTS)
    if safetensors.is_file():
        return import_extra(
            "safetensors.torch", "safetensors", "diffusers", "loading safetensors weights"
        ).load_file(str(safetensors))
    if pickled.is_file():
        return torch.load(pickled, map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"no weights in {model_dir}: expected {WEIGHTS[0]} (or {WEIGHTS[1]}); sharded and "
        f"variant checkpoints are not supported"
    )


def _read_json(path: Path, missing: dict | None = None) -> dict:
    if not path.is_file():
        if missing is not None:
            return missing
        raise FileNotFoundError(f"{path} not found")
    return json.loads(path.read_text())

"""Mixed-precision and channels-last evaluation of a score network; the solver stays in float32.

:class:`AutocastScore` wraps a score function ``score_fn(x, t)`` so that its network runs under
``torch.autocast`` in bfloat16 or float16, optionally on channels-last images, and hands the
solver the score in the state's own dtype and memory layout::

    fast = AutocastScore(model, amp="bf16", channels_last=True)
    x, stats = sdekit_score.sample(fast, process, (16, 3, 32, 32), sampler="adaptive")

**What runs in which precision, and why.**

- *The solver's state* ``x``, the times, the step sizes, the Brownian increments and every
  update ``x + h f + g ΔW`` stay in the state's dtype (float32 by default), never cast. bfloat16
  keeps 8 significant bits (unit roundoff ``u = 2⁻⁸ ≈ 0.39%``): an increment below ``u/2 · |x|``
  is rounded away entirely, and late in a 1000-step Euler–Maruyama run on VP the drift's
  increment is ``β(t) h / 2 ≈ 5·10⁻⁵ |x|``. Measured on a Gaussian
  (``tests/test_score_precision.py``): 1000 steps with a bfloat16 state leave the samples'
  variance 3.1% too large, twenty times the float32 state's discretisation bias (0.14%), and
  more steps make it worse (2.1% at 100 steps).
- *The network's matrix products* (convolutions, linear layers, attention: autocast's
  lower-precision list) run in bfloat16/float16 with float32 accumulation, on weights rounded to
  that format; what autocast keeps in float32 (on CUDA: normalisations, softmax, exponentials,
  ...) stays there. The network's output comes out rounded to the low precision.
- *The score conversion* (:class:`~sdekit_score.sampling.scores.ScoreModel`'s ``-out/σ(t)``,
  ``(α(t) out − x)/σ(t)²``, ...) takes float32 coefficients, so type promotion computes it in
  float32 from the rounded output; the score is returned in the state's dtype.

The price is a perturbation of the score, of the same kind as the network's own approximation
error: with its weights and activations rounded, a bfloat16 network is a slightly different
network, so the error does not average out over the steps. Measured
(``tests/test_score_precision.py``): on the reference :class:`~sdekit_score.training.nets.UNet`
(20 random initialisations, 16x16 and 32x32 images) the output's relative RMS error is
``2.8 u ≈ 1.1%`` in bfloat16 (standard deviation ``0.26 u``) and ``0.36 u`` in float16 (3 more
significant bits). On a Gaussian whose exact score goes through two bfloat16 matrix products,
the samples' variance moves by 0.09% (the same on every seed): a seventeenth of Euler–Maruyama's
discretisation bias at 100 steps (1.53%, exact), and about two thirds of it at the default 1000
steps (0.14%). So bfloat16 is far below the error of the few-step samplers, and at the level of
the many-step ones: for a sampler run to its discretisation floor, compare with float32. On a
small trained model (an MLP on a 2-D ring), the sliced Wasserstein distance between bfloat16 and
float32 samples drawn with the same noise is 2–8% of that between two float32 draws of 2048
samples (``em``, ``dpmpp_2m``).

float16 is more precise but has a narrow range (largest value 65504; nothing is rescaled here):
an activation that grows past it becomes ``inf``, which
:func:`~sdekit_score.sampling.samplers.sample` reports as a non-finite score.

**Channels-last.** ``channels_last=True`` converts the network's 4-D parameters to
``torch.channels_last`` (in place, as ``module.to(memory_format=...)`` does; the module is the
score function, or the one a bound method belongs to) and feeds it ``(batch, C, H, W)`` inputs
in that layout, the one the fastest convolution kernels of cuDNN (tensor cores) and oneDNN use.
The score is returned in the input's layout (contiguous for the solvers' states), so nothing
downstream sees the change. A score function that is neither a module nor a bound method of one
gets its inputs converted only: convert its network with
``net.to(memory_format=torch.channels_last)``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable

import torch

from sdekit.checks import flag
from sdekit.errors import InputTypeError, InputValueError

__all__ = ["AMP_DTYPES", "AutocastScore", "in_network_dtype"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

AMP_DTYPES: dict[str, torch.dtype | None] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "none": None,
}
"""The values of :class:`AutocastScore`'s ``amp`` and the autocast dtype each selects (``"none"``:
no autocast, the network runs in its own dtype); the names of ``TrainConfig.amp``."""


class AutocastScore(torch.nn.Module):
    """``score_fn`` evaluated under ``torch.autocast`` and/or on channels-last inputs.

    See the module docstring for what is kept in which precision. The score comes back in the
    dtype and memory layout of ``x``, so the solver's state stays as it was.

    Args:
        score_fn: ``score_fn(x, t) -> score``, usually a
            :class:`~sdekit_score.sampling.scores.ScoreModel` or another ``nn.Module``.
        amp: ``"bf16"`` (default), ``"fp16"`` or ``"none"`` (no autocast, for ``channels_last``
            alone; ``None`` is the same). ``"fp16"`` is refused on CPU: torch runs it there, but
            without float16 arithmetic units it is emulated (measured 1.3 times slower than
            float32 and 4 times slower than bfloat16 on a 32x32 U-Net, on a CPU with AVX-512
            BF16/FP16 and AMX-BF16).
        channels_last: convert the network's 4-D parameters to ``torch.channels_last`` now (in
            place) and feed it ``(batch, C, H, W)`` inputs in that layout; inputs of any other
            rank are an error.
        device: where the network will run, to check now that autocast supports ``amp`` there.
            Default: the device of the network's parameters, if it has any; otherwise the check
            happens at the first evaluation, on the device of ``x``.

    Raises:
        InputTypeError: ``score_fn`` is not callable, ``amp`` is not a string, or
            ``channels_last`` is not a bool.
        InputValueError: ``amp`` is not a key of :data:`AMP_DTYPES`, or autocast does not
            support it on the device (float16 on CPU; bfloat16 on a GPU without it).
    """

    wraps = "score_fn"  # the network, for the samplers (see sampling.samplers._layers)

    def __init__(
        self,
        score_fn: ScoreFn,
        amp: str | None = "bf16",
        *,
        channels_last: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not callable(score_fn):
            raise InputTypeError(
                f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}"
            )
        flag(channels_last, "channels_last")
        self.amp = _amp_name(amp)
        self.autocast_dtype = AMP_DTYPES[self.amp]
        self.channels_last = channels_last
        self.score_fn = score_fn  # registered as a submodule when it is one
        network = module_of(score_fn)
        # A bound method's module is registered too, so that its parameters, and with them the
        # samples' default device and dtype in sample(), are found through the wrapper.
        self.owner = network if network is not None and network is not score_fn else None
        self._checked: set[str] = set()
        if channels_last and network is not None:
            network.to(memory_format=torch.channels_last)
        if device is None and network is not None:
            device = next((p.device for p in network.parameters() if p.is_floating_point()), None)
        if device is not None:
            self._check_device(torch.device(device).type)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs = x
        if self.channels_last:
            if x.ndim != 4:
                raise InputValueError(
                    f"channels_last=True needs images (batch, C, H, W), got x of shape "
                    f"{tuple(x.shape)}; use channels_last=False for data of another rank"
                )
            inputs = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            out = self.score_fn(inputs, t)
        else:
            self._check_device(x.device.type)
            with torch.autocast(x.device.type, dtype=self.autocast_dtype):
                out = self.score_fn(inputs, t)
        return _like(out, x)

    def _check_device(self, device_type: str) -> None:
        if self.autocast_dtype is None or device_type in self._checked:
            return
        _check_autocast(device_type, self.autocast_dtype, self.amp)
        self._checked.add(device_type)

    def extra_repr(self) -> str:
        return f"amp={self.amp!r}, channels_last={self.channels_last}"


def _amp_name(amp) -> str:
    """``amp`` checked: a key of :data:`AMP_DTYPES` (``None`` is ``"none"``)."""
    if amp is None:
        return "none"
    if not isinstance(amp, str):
        raise InputTypeError(
            f"amp must be one of {', '.join(map(repr, AMP_DTYPES))} or None, got "
            f"{type(amp).__name__} {amp!r}"
        )
    if amp not in AMP_DTYPES:
        raise InputValueError(
            f"amp={amp!r}: choose one of {', '.join(map(repr, AMP_DTYPES))} (the network's "
            f"compute precision; the solver's state keeps its own dtype)"
        )
    return amp


def module_of(score_fn) -> torch.nn.Module | None:
    """The module whose parameters ``score_fn`` uses: itself, or a bound method's owner."""
    if isinstance(score_fn, torch.nn.Module):
        return score_fn
    owner = getattr(score_fn, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def weights_of(score_fn) -> torch.Tensor | None:
    """The first floating parameter or buffer of :func:`module_of`'s module (its device and
    dtype are the network's), else ``None``."""
    module = module_of(score_fn)
    if module is None:
        return None
    tensors = itertools.chain(module.parameters(), module.buffers())  # read up to the first only
    return next((p for p in tensors if p.is_floating_point()), None)


def in_network_dtype(net, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the floating dtype of ``net``'s weights, where they have another: a float16 or
    bfloat16 network runs in its own precision while the solver's state stays in float32 (a
    16-bit state would round away the late steps' increments; see the module docstring)."""
    weights = weights_of(net)
    return x if weights is None or weights.dtype == x.dtype else x.to(weights.dtype)


def _check_autocast(device_type: str, dtype: torch.dtype, name: str) -> None:
    """Raise unless ``torch.autocast(device_type, dtype)`` computes in ``dtype``.

    For a dtype that a device's autocast lacks, torch does not raise: it warns and runs in
    float32. So the check enters autocast and asks whether it is on.
    """
    if device_type == "cpu" and dtype == torch.float16:
        raise InputValueError(
            "amp='fp16' on CPU: use amp='bf16', the CPU's fast 16-bit format (torch runs "
            "float16 autocast on CPU, but without float16 arithmetic units it is emulated, "
            "slower than float32), or run the network on a GPU for float16"
        )
    available = getattr(torch.amp, "is_autocast_available", None)
    if available is not None and not available(device_type):
        raise InputValueError(
            f"amp={name!r}: torch has no autocast for device type {device_type!r}; use "
            f"amp='none' there"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type, dtype=dtype):
                enabled = _autocast_enabled(device_type)
        except RuntimeError as err:  # e.g. CUDA bfloat16 on a GPU without it
            raise InputValueError(
                f"amp={name!r} is not supported on {device_type!r}: {err}; use "
                f"{'fp16' if name == 'bf16' else 'bf16'!r} or 'none'"
            ) from err
    if not enabled:
        reason = " ".join(str(caught[0].message).split()) if caught else "no reason given"
        raise InputValueError(
            f"amp={name!r}: torch.autocast on {device_type!r} does not compute in {dtype} "
            f"(torch: {reason}); choose another of {', '.join(map(repr, AMP_DTYPES))}, or run "
            f"the network on a device that supports it"
        )


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _like(out, x: torch.Tensor):
    """``out`` in the dtype and memory layout of ``x`` (a non-tensor is left for the caller's
    check to report)."""
    if not isinstance(out, torch.Tensor):
        return out
    if out.dtype != x.dtype:
        out = out.to(x.dtype)
    if x.is_contiguous():
        return out.contiguous()
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out

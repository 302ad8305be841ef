"""k-diffusion's samplers driven by an sdekit_score score, for side-by-side benchmarks.

k-diffusion is never a dependency of the project. Its samplers live in one file,
``k_diffusion/sampling.py``, which needs only torch, scipy, torchsde and tqdm (plus torchdiffeq for
``log_likelihood``, which the benchmark does not call); the package's ``__init__`` pulls in far
more (PIL, torchvision, safetensors, ...). So that file is loaded by path: from a folder or file
given on the command line, else from wherever an installed ``k_diffusion`` lives (found without
importing it). To get it without touching the project's environment::

    pip download k-diffusion==0.1.1.post1 --no-deps -d /tmp/kd
    python -m zipfile -e /tmp/kd/k_diffusion-0.1.1.post1-py3-none-any.whl /tmp/kd/src
    python bench/samplers.py --kdiffusion /tmp/kd/src ...

**Conventions.** k-diffusion samples ``x̃ = x0 + σ̃ z`` with a denoiser ``D(x̃, σ̃) ≈ E[x0 | x̃]``
(Karras et al. 2022). A process of sdekit_score has ``x_t = α(t) x0 + σ(t) z``, so
``x̃ = x_t / α(t)`` at the noise level ``σ̃ = σ(t)/α(t)`` (``process.noise_level``; for VE
``α = 1`` and nothing changes, for VP ``σ̃ = √(exp(∫β) − 1)``, 152 at ``t = 1`` with the
default β). By Tweedie, with ``t = process.noise_level_to_t(σ̃)``,

    D(x̃, σ̃) = E[x0 | x_t = α x̃] = (x_t + σ(t)² s(x_t, t)) / α(t),

which is the final denoising of :func:`sdekit_score.sample`. A run starts from the process's own
prior draw ``x_T`` mapped to ``x̃ = x_T / α(T)`` and runs from ``σ̃(T)`` to ``σ̃(eps)``, so both
libraries solve the same problem; the fixed-step samplers end with k-diffusion's step to
``σ̃ = 0``, which returns ``D`` at ``σ̃(eps)``: the denoised sample, in data coordinates, with
the denoising evaluation counted as one of their steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch

from sdekit_score.sampling.processes import ForwardProcess

INSTALL_HINT = (
    "k-diffusion's sampling.py was not found: pass --kdiffusion PATH (a folder holding "
    "k_diffusion/sampling.py, or that file), e.g. after `pip download k-diffusion==0.1.1.post1 "
    "--no-deps -d /tmp/kd && python -m zipfile -e /tmp/kd/k_diffusion-0.1.1.post1-py3-none-any.whl "
    "/tmp/kd/src`, or install k-diffusion into the benchmark's own environment"
)


DISJOINT_NOISE = ("sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde")
"""Samplers whose Brownian-tree queries on a fixed grid are disjoint intervals."""


def sampling_file(path: str | Path | None) -> Path:
    """k-diffusion's ``sampling.py``: ``path`` (the file, or a folder holding
    ``k_diffusion/sampling.py`` or ``sampling.py``), else an installed package's."""
    if path is not None:
        path = Path(path)
        for candidate in (path, path / "k_diffusion" / "sampling.py", path / "sampling.py"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no k_diffusion/sampling.py under {path}. {INSTALL_HINT}")
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / "sampling.py"


def load_sampling(path: str | Path | None = None) -> types.ModuleType:
    """k-diffusion's ``sampling`` module, loaded by path with stand-ins for what it does not need.

    It imports its package's ``utils`` only for ``append_dims`` (given here), and torchdiffeq only
    for ``log_likelihood`` (a stand-in that raises when called, if torchdiffeq is absent).
    """
    file = sampling_file(path)
    package = types.ModuleType("_kdiffusion")
    package.__path__ = []
    utils = types.ModuleType("_kdiffusion.utils")
    utils.append_dims = append_dims
    package.utils = utils
    sys.modules.setdefault("_kdiffusion", package)
    sys.modules.setdefault("_kdiffusion.utils", utils)
    if importlib.util.find_spec("torchdiffeq") is None:
        sys.modules.setdefault("torchdiffeq", _absent_torchdiffeq())
    spec = importlib.util.spec_from_file_location("_kdiffusion.sampling", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """A benchmark's ``--kdiffusion PATH`` and ``--no-kdiffusion`` options."""
    parser.add_argument(
        "--kdiffusion", type=Path, help="k-diffusion's source (see bench/kdiffusion.py)"
    )
    parser.add_argument("--no-kdiffusion", action="store_true", help="only our samplers")


def sampling_from_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> types.ModuleType | None:
    """k-diffusion's ``sampling`` module as the options of :func:`add_arguments` ask (``None``
    with ``--no-kdiffusion``); exits with the install hint where it cannot be loaded."""
    if args.no_kdiffusion:
        return None
    try:
        return load_sampling(args.kdiffusion)
    except (FileNotFoundError, ImportError) as error:
        parser.exit(2, f"{error}\n(or run without it: --no-kdiffusion)\n")


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """k-diffusion's ``utils.append_dims``: trailing singleton axes up to ``target_dims``."""
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def _absent_torchdiffeq() -> types.ModuleType:
    module = types.ModuleType("torchdiffeq")

    def odeint(*args, **kwargs):
        raise ImportError(
            "torchdiffeq is not installed (only k-diffusion's log_likelihood uses it)"
        )

    module.odeint = odeint
    return module


class Denoiser:
    """``D(x̃, σ̃)`` of k-diffusion from ``score_fn(x, t)`` of ``process`` (see the module docstring).

    Counts its calls: each evaluates the score once for the whole batch, so ``calls`` is the
    number of score evaluations per sample.
    """

    def __init__(self, process: ForwardProcess, score_fn: Callable):
        self.process, self.score_fn, self.calls = process, score_fn, 0

    @property
    def sigma_range(self) -> tuple[float, float]:
        """``(σ̃(eps), σ̃(T))``."""
        return self.process.noise_level_range()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(x.shape[0])
        t = self.process.noise_level_to_t(sigma)
        alpha = append_dims(self.process.alpha(t), x.ndim)
        noise_sd = append_dims(self.process.sigma(t), x.ndim)
        x_t = alpha.to(x.dtype) * x
        score = self.score_fn(x_t, t.to(x.dtype))
        return ((x_t + noise_sd**2 * score) / alpha).to(x.dtype)

    def start(self, x_T: torch.Tensor) -> torch.Tensor:
        """k-diffusion's initial state ``x_T / α(T)`` from a draw of the process's prior."""
        alpha = self.process.alpha(torch.tensor(self.process.T, dtype=torch.float64))
        return x_T / float(alpha)

    def to_process(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """A k-diffusion state at ``σ̃`` in the process's coordinates, ``α(t) x̃``."""
        t = self.process.noise_level_to_t(torch.tensor(sigma, dtype=torch.float64))
        return x * float(self.process.alpha(t))


def karras_sigmas(kd: types.ModuleType, denoiser: Denoiser, steps: int) -> torch.Tensor:
    """k-diffusion's Karras et al. schedule (ρ = 7) over the process's levels, ending at 0."""
    sigma_min, sigma_max = denoiser.sigma_range
    return kd.get_sigmas_karras(steps, sigma_min, sigma_max, rho=7.0)


def run(
    kd: types.ModuleType,
    name: str,
    denoiser: Denoiser,
    x_T: torch.Tensor,
    seed: int,
    **options,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One k-diffusion sampler from the prior draw ``x_T``.

    ``name`` is ``sample_dpm_adaptive`` (options ``rtol``, ``atol``, ...) or a fixed-step sampler
    (option ``steps`` on the Karras schedule, the rest passed on). Their noise comes from torch's
    global generator, seeded here. ``sample_dpmpp_2m_sde`` defaults to a torchsde Brownian tree; it
    gets k-diffusion's plain Gaussian noise sampler instead: it queries the disjoint intervals of
    a fixed grid, so the two are equal in law, and the tree cost about a second per query in
    3072-D. ``sample_dpmpp_sde`` keeps its tree: its two queries per step overlap.
    Returns ``(raw, denoised, nfe)``: the state at ``t = eps`` in the process's coordinates, the
    denoised sample, and the score evaluations per sample (the denoising included).
    """
    sampler = getattr(kd, name)
    torch.manual_seed(seed)
    x = denoiser.start(x_T)
    sigma_min, sigma_max = denoiser.sigma_range
    denoiser.calls = 0
    if name == "sample_dpm_adaptive":
        raw = sampler(denoiser, x, sigma_min, sigma_max, disable=True, **options)
        den = denoiser(raw, torch.tensor(sigma_min))
        return denoiser.to_process(raw, sigma_min), den, denoiser.calls
    sigmas = karras_sigmas(kd, denoiser, options.pop("steps"))
    if name in DISJOINT_NOISE:
        options.setdefault("noise_sampler", kd.default_noise_sampler(x))
    last = {}
    den = sampler(denoiser, x, sigmas, disable=True, callback=last.update, **options)
    if not math.isclose(float(last["sigma"]), sigma_min, rel_tol=1e-5):
        raise RuntimeError(f"{name}: the last step did not start at sigma_min")
    return denoiser.to_process(last["x"], sigma_min), den, denoiser.calls

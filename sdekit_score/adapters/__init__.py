"""Adapters: models trained elsewhere as ``(score_fn, process)`` pairs for :func:`sdekit_score.sample`.

Layer above :mod:`sdekit_score.sampling`. ``from sdekit_score.adapters import from_diffusers,
from_denoiser``:

- :func:`from_diffusers`: a diffusers model with its training scheduler (DDPM/DDIM-style
  ``alphas_cumprod`` on :class:`DiscreteVPProcess`, exact at the scheduler's timesteps, or
  ``ScoreSdeVeScheduler`` on the VE process); :func:`load_pretrained` reads a ``save_pretrained``
  directory (needs ``pip install 'sdekit[diffusers]'``, imported only then).
- :func:`from_denoiser`: a k-diffusion / EDM denoiser ``D(x, sigma)`` on the EDM process.
"""

from sdekit.extras import MissingExtraError

from .denoisers import DenoiserScore, from_denoiser
from .diffusers import DiffusersScore, from_diffusers, is_diffusers_directory, load_pretrained
from .processes import DiscreteVPProcess

__all__ = [
    "DenoiserScore",
    "DiffusersScore",
    "DiscreteVPProcess",
    "MissingExtraError",
    "from_denoiser",
    "from_diffusers",
    "is_diffusers_directory",
    "load_pretrained",
]

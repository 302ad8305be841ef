"""Optional dependencies, imported when first needed: the one place that names the extras.

The base install (``pip install sdekit``) needs only torch, torchsde, numpy, einops, tqdm and
hypothesis; pictures (``plot``), the digits data (``data``) and diffusers models (``diffusers``)
come with extras. :func:`import_extra` turns a missing one into a one-line error that says what
to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is missing; the message names the extra that installs it."""


def import_extra(module: str, package: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or a :class:`MissingExtraError` saying that ``purpose`` needs
    ``package`` and which extra of sdekit installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{purpose} needs {package}: pip install 'sdekit[{extra}]'", name=module
        ) from err

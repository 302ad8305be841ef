"""Randomness from a user-given source only: a seed, a ``torch.Generator``, or one generator per sample.

Public: samplers, kernels and user code built on sdekit take generators the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sdekit.errors import InputTypeError, InputValueError

GeneratorLike = None | int | torch.Generator | Sequence[torch.Generator]


def as_generator(generator: GeneratorLike, device: torch.device | str | None = None):
    """Normalise ``generator`` to ``None``, a ``torch.Generator`` or a list of them.

    An ``int`` is a seed for a fresh generator on ``device``. A sequence gives one generator per
    sample (entry ``i`` drives sample ``i``), so that a sample's randomness does not depend on the
    rest of the batch.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool):
        raise InputTypeError(
            "generator must be None, an int seed, a torch.Generator or a list of them"
        )
    if isinstance(generator, int):
        device = torch.device(device) if device is not None else torch.device("cpu")
        gen = torch.Generator(device=device)
        gen.manual_seed(generator)
        return gen
    if isinstance(generator, Sequence) and all(isinstance(g, torch.Generator) for g in generator):
        return list(generator)
    raise InputTypeError(
        f"generator must be None, an int seed, a torch.Generator or a list of torch.Generator, "
        f"got {type(generator).__name__}"
    )


def randn(shape, generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Standard normal draws of ``shape``; with a list of generators, row ``i`` comes from ``generator[i]``."""
    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise InputValueError(
                f"got {len(generator)} generators for a batch of {shape[0]}: pass one per sample"
            )
        return torch.stack(
            [torch.randn(shape[1:], generator=g, dtype=dtype, device=device) for g in generator]
        )
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


def rand(shape, generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape``, with the same generator conventions as :func:`randn`."""
    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise InputValueError(
                f"got {len(generator)} generators for a batch of {shape[0]}: pass one per sample"
            )
        return torch.stack(
            [torch.rand(shape[1:], generator=g, dtype=dtype, device=device) for g in generator]
        )
    return torch.rand(shape, generator=generator, dtype=dtype, device=device)

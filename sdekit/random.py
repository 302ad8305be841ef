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
    rest of the batch. Given ``device``, a generator must be on a device of its type (torch draws
    on a device only with a generator of that device).
    """
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return _on(device, [generator])[0]
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
        return _on(device, list(generator))
    raise InputTypeError(
        f"generator must be None, an int seed, a torch.Generator or a list of torch.Generator, "
        f"got {type(generator).__name__}"
    )


def _on(device: torch.device | str | None, generators: list) -> list:
    """``generators``, checked to be on ``device``'s type of device."""
    if device is None:
        return generators
    kind = torch.device(device).type
    for g in generators:
        if g.device.type != kind:
            raise InputValueError(
                f"a torch.Generator on {g.device.type} cannot draw the random numbers of a state "
                f"on {torch.device(device)}: create it with torch.Generator(device="
                f"{kind!r}).manual_seed(...), or pass an int seed"
            )
    return generators


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

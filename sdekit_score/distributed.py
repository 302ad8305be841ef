"""Sharded, resumable sampling across ``torch.distributed`` ranks (``sdekit-score sample``).

:func:`draw` runs :func:`~sdekit_score.sampling.samplers.sample` on
:func:`sdekit.distributed.run_chunks`: the ``n`` samples are cut into chunks of ``chunk_size``
and sample ``i`` draws from its own generator, seeded from ``(seed, i)``, so the samples are the
same on one process and on any number of ``torchrun`` processes, and a rerun after a crash makes
only the chunks whose shards are missing or damaged. ``sdekit-score sample`` always samples this
way (on one process without ``--distributed``), so ``samples.pt`` does not depend on how it was
launched::

    torchrun --standalone --nproc_per_node=2 -m sdekit_score.cli -- sample --target gmm2d \\
        --sampler em --n 96 --chunk-size 16 --seed 11 --out runs/s --distributed

(``--`` keeps torchrun's parser from taking ``--n`` for an abbreviation of one of its options.)

Each sample is independent of the rest of its chunk (per-sample generators), except with
samplers that couple a batch (``pc`` with its default batch-mean norms); the chunk size, the
batch size within a chunk, the sampler and its options, the process, the score model (the hash of
its weights when it is an ``nn.Module``) and the device type are all in the manifest, so a rerun
with any of them changed is refused.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from sdekit.distributed import Chunk, Group, Report, init, run_chunks, single
from sdekit.errors import InputValueError
from sdekit.solution import SolveError
from sdekit_score.app.demo import Run
from sdekit_score.sampling.processes import ForwardProcess
from sdekit_score.sampling.samplers import DEFAULT_INIT, ScoreFn, sample

__all__ = ["DEFAULT_CHUNK_SIZE", "draw", "launch"]

DEFAULT_CHUNK_SIZE = 256


def draw(
    score_fn: ScoreFn,
    process: ForwardProcess,
    event_shape: tuple[int, ...],
    run: Run,
    *,
    n: int,
    directory: str | os.PathLike,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int | None = None,
    denoise: bool = True,
    group: Group | None = None,
    tag: Any = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, Report] | None:
    """``n`` samples of ``run``, in chunks across ``group``'s ranks, with shards in ``directory``.

    Args:
        score_fn, process, event_shape, run: what to sample, as for
            :func:`sdekit_score.app.demo.draw`; samples are made on ``group.device``.
        n, seed, chunk_size, directory, group, progress: as for
            :func:`sdekit.distributed.run_chunks` (``directory`` is reached by every rank).
        batch_size: samples per sampler call within a chunk (default: the whole chunk).
        denoise: apply the final denoising step.
        tag: what else identifies the score (the manifest describes a function by its name).

    Returns:
        On rank 0, ``(samples, nfe, report)``: the samples ``(n, *event_shape)`` in chunk order
        (on the CPU), the score evaluations of each sample ``(n,)``, and the run's
        :class:`~sdekit.distributed.Report`; ``None`` on the other ranks.
    """
    if "throw" in run.options:  # a shard holds finished samples only: NaN rows would stay
        raise InputValueError(
            "throw: sharded sampling keeps whole chunks (a chunk with a stalled sample fails, "
            "the finished chunks stay, and a rerun with a larger max_steps resumes); pass "
            "throw=False to sdekit_score.sample directly"
        )
    group = group if group is not None else single()
    batch = batch_size or chunk_size

    def job(chunk: Chunk) -> dict[str, torch.Tensor]:
        generators = chunk.generators(group.device)
        samples, nfe = [], []
        for first in range(0, len(chunk), batch):
            part = generators[first : first + batch]
            try:
                x, stats = sample(
                    score_fn,
                    process,
                    (len(part), *event_shape),
                    sampler=run.sampler,
                    generator=part,
                    device=group.device,
                    denoise=denoise,
                    progress=progress and group.rank == 0,
                    **run.options,
                )
            except SolveError as err:
                if err.sample is None:
                    raise
                index = chunk.start + first + err.sample
                raise SolveError(
                    f"{err} [chunk {chunk.index}: its sample {first + err.sample} is sample "
                    f"{index} of the run]",
                    err.status,
                    sample=index,
                ) from err
            samples.append(x)
            nfe.append(stats["nfe"])
        return {"samples": torch.cat(samples), "nfe": torch.cat(nfe)}

    # max_steps decides only whether a chunk fails, not what a finished one holds: a rerun with
    # another budget resumes (its failure message asks for a larger one)
    options = {k: v for k, v in run.options.items() if k != "max_steps"}
    if DEFAULT_INIT.get(run.sampler) == "centred":  # the start is what the shards hold too
        options.setdefault("init", "centred")
    config = {
        "sampler": run.sampler,
        "options": options,
        "event_shape": list(event_shape),
        "batch_size": batch,
        "denoise": denoise,
        "process": process,
        "score": score_fn,
        "device": group.device.type,
        "tag": tag,
    }
    result = run_chunks(
        job,
        n=n,
        chunk_size=chunk_size,
        seed=seed,
        directory=directory,
        config=config,
        group=group,
        progress=progress,
        unit="samples",
    )
    if result is None:
        return None
    tensors, _, report = result
    return tensors["samples"], tensors["nfe"], report


def launch(device: str, distributed: bool) -> Group:
    """The group of ``sdekit-score sample``: with ``distributed``, this process's rank of the job
    ``torchrun`` started (:func:`sdekit.distributed.init`), else a single process.

    Without ``distributed``, a process that ``torchrun`` started as one of several is refused:
    each would make every chunk and write the whole output.
    """
    if distributed:
        return init(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        raise InputValueError(
            f"this process is one of {world_size} that torchrun started (WORLD_SIZE={world_size}): "
            f"add --distributed to share the chunks out, or run the command without torchrun"
        )
    return single(device)

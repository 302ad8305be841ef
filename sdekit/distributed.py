"""Sharded, resumable runs of many independent items (samples, SDE paths) over ``torch.distributed``.

A run of ``n`` items is cut into chunks of ``chunk_size``: chunk ``k`` holds items
``[kC, min(n, (k + 1)C))``. Item ``i`` draws all of its randomness from its own generator, seeded
with :func:`item_seed` ``(seed, i)``, so chunk ``k`` is the same computation whichever process
makes it, on however many processes: the merged result is identical for any world size (up to
the floating-point differences of batched kernels on different hardware), and, for computations
that treat items independently, even for any chunk size.

:func:`run_chunks` runs a job over the chunks on every rank of a :class:`Group` (one process, or
one rank of a job started by ``torchrun``):

1. the ranks all-gather their configuration (a JSON description, :func:`describe`): ranks started
   with different arguments all stop with the same message instead of waiting on each other;
2. rank 0 checks the directory's ``manifest.json``, which holds the configuration and its hash: a
   directory written by another configuration is refused, since its shards would be mixed in;
3. rank ``r`` verifies the shards of chunks ``k = r (mod W)``; the chunks whose shard is missing or
   fails its check, gathered and sorted, are the pending ones, and rank ``r`` takes
   ``pending[r::W]``: a deterministic order, rebalanced on every resume;
4. each finished chunk is written atomically as its own shard (temporary file, ``fsync``,
   ``rename``, ``fsync`` of the directory): a header with the SHA-256 of the rest, then its
   tensors and metadata; so a shard is either absent or whole, and one damaged on disk afterwards
   fails its check and is made again;
5. ranks send heartbeats through the process group's store, from a thread of their own; rank 0
   waits until every rank is done, or notices within ``dead_after`` seconds a rank that failed or
   stopped beating (its process died, froze or lost the store), and stops after its current chunk
   with a message (the others, watching rank 0, then stop too); the finished chunks stay for a
   rerun. The beat does not measure a job's progress (a chunk may rightly take an hour): a job
   that blocks while its process lives (on I/O, a lock, a device) keeps its rank beating, and only
   collectives time out (``init``'s ``timeout``);
6. rank 0 merges the shards in chunk order, with one progress bar over all chunks (items per
   second).

A process killed at any moment loses at most the chunks it was making; rerunning the same
command, on any number of processes, makes exactly the missing ones.

:func:`solve_ensemble` is :func:`sdekit.solve` over many paths on this machinery, for Monte Carlo.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checks import positive_float, positive_int
from .errors import InputTypeError, InputValueError
from .solution import Solution, SolveError, Status
from .solve import solve

__all__ = [
    "Chunk",
    "ConfigurationError",
    "DamagedShardError",
    "DistributedError",
    "Group",
    "Report",
    "chunks",
    "describe",
    "init",
    "item_seed",
    "load_shard",
    "run_chunks",
    "single",
    "solve_ensemble",
    "write_atomically",
]

MANIFEST = "manifest.json"
SHARD_MAGIC = b"SDEKSHRD"  #: the first bytes of a shard, before the SHA-256 of the rest


class DistributedError(SolveError):
    """A distributed run cannot finish: another rank failed, died or stopped responding.

    The shards finished so far are kept; rerunning the same command resumes from them.
    """


class ConfigurationError(InputValueError):
    """The ranks were started with different arguments, or the directory holds another run."""


# --------------------------------------------------------------------------- chunks and seeds


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index``'s generator: 63 bits of the BLAKE2b hash of ``(seed, index)``.

    A hash rather than ``seed + index``: that would give run ``seed=0``'s item 1 the stream of run
    ``seed=1``'s item 0.
    """
    return _derive(seed, str(index))


def _derive(seed: int, key: str) -> int:
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Chunk ``index`` of a run: items ``start`` to ``stop - 1`` of a run seeded ``seed``."""

    index: int
    start: int
    stop: int
    seed: int

    def __len__(self) -> int:
        return self.stop - self.start

    def generators(self, device: torch.device | str = "cpu") -> list[torch.Generator]:
        """One generator per item, on ``device``: item ``i``'s is seeded ``item_seed(seed, i)``."""
        return [
            torch.Generator(device=device).manual_seed(item_seed(self.seed, i))
            for i in range(self.start, self.stop)
        ]

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """One generator for the whole chunk, seeded from ``(seed, index)``: one draw per step
        instead of one per item, but an item then depends on the rest of its chunk."""
        return torch.Generator(device=device).manual_seed(_derive(self.seed, f"chunk {self.index}"))


def chunks(n: int, chunk_size: int, seed: int) -> list[Chunk]:
    """The chunks of a run of ``n`` items: ``ceil(n / chunk_size)`` of them, the last one shorter."""
    positive_int(n, "n")
    positive_int(chunk_size, "chunk_size")
    return [
        Chunk(k, start, min(n, start + chunk_size), seed)
        for k, start in enumerate(range(0, n, chunk_size))
    ]


# --------------------------------------------------------------------------- configuration


def describe(value: Any, _depth: int = 0) -> Any:
    """A JSON description of ``value`` that is the same in every process and every run.

    Numbers (a float with an integer value as that int), strings, lists and dicts describe
    themselves; a tensor is its shape, dtype and SHA-256; an ``nn.Module`` its type, the
    SHA-256 of its state and its public attributes; a function or a class its qualified name;
    any other object (a problem, solver, controller, process) its type and its attributes. A
    function's name says nothing of what it computes or of the values it closes over: a job
    whose functions change between runs should say so in its configuration (a tag).
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)  # t1=1 and t1=1.0 are one configuration (JSON would tell them apart)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": str(value.dtype), "sha256": _digest([value])}
    if isinstance(value, torch.nn.Module):
        state = value.state_dict()
        settings = {k: v for k, v in vars(value).items() if not k.startswith("_")}
        return {
            "module": _qualname(type(value)),
            "sha256": _digest([state[k] for k in sorted(state)]),
            "settings": describe(settings, _depth + 1),
        }
    if isinstance(value, Mapping):
        return {str(k): describe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe(v, _depth + 1) for v in value]
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return _qualname(value)
    if hasattr(value, "__dict__") and _depth < 8:
        return {_qualname(type(value)): describe(vars(value), _depth + 1)}
    return _qualname(type(value))


def _qualname(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _digest(tensors: Sequence[torch.Tensor]) -> str:
    sha = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        sha.update(f"{t.dtype}{tuple(t.shape)}".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy())
    return sha.hexdigest()


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict) and config:
        return {k: v for key in config for k, v in _flatten(config[key], f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): config}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _differences(then: dict, now: dict, limit: int = 4) -> str:
    """``key: old -> new`` for the (first ``limit``) entries where two configurations differ."""
    old, new = _flatten(then), _flatten(now)
    # as the hash sees them: 1 and 1.0 differ there (a manifest written before they were one)
    keys = [k for k in sorted(old.keys() | new.keys()) if _json(old.get(k)) != _json(new.get(k))]
    text = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:limit])
    return text + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


# --------------------------------------------------------------------------- the group of ranks


@dataclasses.dataclass
class Group:
    """This process's place in a run: its ``rank`` among ``world_size`` processes, its ``device``
    and the store the ranks coordinate through. Build it with :func:`init` or :func:`single`.

    ``dead_after``: seconds without a heartbeat after which a rank counts as dead.
    """

    rank: int
    world_size: int
    device: torch.device
    store: dist.Store
    dead_after: float = 60.0
    owns_process_group: bool = False
    runs: int = 0

    def all_gather(self, obj: Any) -> list:
        """``obj`` of every rank, in rank order."""
        if self.world_size == 1:
            return [obj]
        gathered = [None] * self.world_size
        try:
            dist.all_gather_object(gathered, obj)
        except RuntimeError as err:  # gloo and NCCL report a lost peer as RuntimeError
            raise DistributedError(_lost_contact(err)) from err
        return gathered

    def close(self) -> None:
        """Destroy the default process group if :func:`init` created it."""
        if self.owns_process_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_process_group = False

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def single(device: torch.device | str = "cpu") -> Group:
    """A group of one process on ``device``."""
    return Group(0, 1, torch.device(device), dist.HashStore())


def init(
    device: torch.device | str = "cpu", *, timeout: float = 600.0, dead_after: float = 60.0
) -> Group:
    """This process's :class:`Group`, from the environment ``torchrun`` sets.

    Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``), the default process group is initialised (unless it already is): NCCL with
    the GPU of the local rank (``cuda:LOCAL_RANK``) when ``device`` is ``"cuda"``, gloo on CPU.
    Without that environment, a single process. ``timeout`` (seconds) bounds the collectives,
    ``dead_after`` the silence of a rank that died (see :func:`run_chunks`).
    """
    positive_float(timeout, "timeout")
    positive_float(dead_after, "dead_after")
    device = torch.device(device)
    if "RANK" not in os.environ:
        return dataclasses.replace(single(device), dead_after=dead_after)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        if device.index is not None:
            raise InputValueError(
                f"device={str(device)!r}: each distributed process takes the GPU of its local "
                f"rank; pass device='cuda'"
            )
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(seconds=timeout),
            device_id=device if device.type == "cuda" else None,
        )
    # torch keeps the default group's store private; it is the store every rank already reaches.
    store = dist.PrefixStore("sdekit.distributed", dist.distributed_c10d._get_default_store())
    return Group(rank, world_size, device, store, dead_after, owns)


# --------------------------------------------------------------------------- shards on disk


class _Shards:
    """The shard files of one configuration in ``directory``: ``chunk_000012.pt`` per chunk and
    ``manifest.json``."""

    def __init__(self, directory: Path, config: dict):
        self.directory = directory
        self.config = config
        self.sha256 = hashlib.sha256(_json(config).encode()).hexdigest()

    def path(self, k: int) -> Path:
        return self.directory / f"chunk_{k:06d}.pt"

    def prepare(self) -> str | None:
        """Rank 0, before any shard is written: write the manifest, or check it and remove the
        temporary files of killed writers; the reason for a refusal, else ``None``. The manifest
        of another configuration whose run wrote no shard (it failed first) is replaced: there is
        nothing of it to keep."""
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = self.directory / MANIFEST
        try:
            then = json.loads(manifest.read_text())
        except (FileNotFoundError, ValueError):
            then = None
        if isinstance(then, dict) and then.get("sha256") != self.sha256:
            if any(self.directory.glob("chunk_*.pt")):
                return (
                    f"{self.directory} holds shards of another run "
                    f"({_differences(then.get('config', {}), self.config)}): rerun with its "
                    f"arguments (an option given by mistake?) or use another directory; delete "
                    f"{self.directory} only to discard its finished chunks"
                )
            then = None  # its run failed before writing a shard: nothing of it to keep
        for stale in self.directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        if not isinstance(then, dict):
            text = json.dumps({"sha256": self.sha256, "config": self.config}, indent=2)
            write_atomically(manifest, lambda f: f.write(text.encode()))
        return None

    def write(self, chunk: Chunk, tensors: dict[str, torch.Tensor], info: dict) -> None:
        """The shard: a header (:data:`SHARD_MAGIC` and the SHA-256 of the rest) and the bytes of
        ``torch.save({"meta": ..., "tensors": ...})``."""
        tensors = {
            k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
            for k, v in tensors.items()
        }
        meta = {"chunk": chunk.index, "start": chunk.start, "stop": chunk.stop}
        meta |= {"config": self.sha256, "info": info}
        buffer = io.BytesIO()
        torch.save({"meta": meta, "tensors": tensors}, buffer)
        payload = buffer.getvalue()
        header = SHARD_MAGIC + hashlib.sha256(payload).digest()
        write_atomically(self.path(chunk.index), lambda f: f.write(header + payload))

    def read(self, chunk: Chunk) -> tuple[dict | None, str]:
        """``(shard, "")`` when chunk's shard is there and whole, else ``(None, why not)``."""
        try:
            shard = load_shard(self.path(chunk.index))
        except FileNotFoundError:
            return None, "missing"
        except DamagedShardError as err:
            return None, str(err)
        meta = shard["meta"]
        expected = {"chunk": chunk.index, "start": chunk.start, "stop": chunk.stop}
        if any(meta.get(k) != v for k, v in expected.items()) or meta.get("config") != self.sha256:
            return None, "of another chunk or configuration"
        return shard, ""


class DamagedShardError(ValueError):
    """A shard file that fails its checksum or does not load."""


def load_shard(path: str | os.PathLike) -> dict:
    """The ``{"meta": ..., "tensors": ...}`` of a shard file, after checking its SHA-256.

    ``meta`` holds the chunk's index and item range, the configuration's hash and the job's info
    (with the rank that made it and its wall time). Raises :class:`DamagedShardError` for a
    damaged file, ``FileNotFoundError`` for a missing one.
    """
    data = Path(path).read_bytes()
    size = len(SHARD_MAGIC) + 32
    if data[:size] != SHARD_MAGIC + hashlib.sha256(data[size:]).digest():
        raise DamagedShardError("checksum mismatch")
    try:
        shard = torch.load(io.BytesIO(data[size:]), map_location="cpu", weights_only=True)
    except Exception as err:  # passed its checksum yet does not load: not written by write
        raise DamagedShardError(f"unreadable ({type(err).__name__})") from err
    if not isinstance(shard, dict) or shard.keys() != {"meta", "tensors"}:
        raise DamagedShardError("not a shard")
    return shard


def write_atomically(path: Path, write: Callable) -> None:
    """``write(file)`` to a temporary file, ``fsync``, rename over ``path``, ``fsync`` the folder:
    after a crash at any moment ``path`` is either the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# --------------------------------------------------------------------------- heartbeats


class _Ranks:
    """The ranks of one run, through the store: progress, completion and heartbeats.

    With several ranks a thread beats for this rank and watches the others (rank 0 watches every
    rank, the others rank 0): :meth:`check` raises once one failed or fell silent.
    """

    def __init__(self, group: Group, directory: Path):
        self.store = dist.PrefixStore(f"run{group.runs}", group.store)
        group.runs += 1
        self.group, self.directory = group, directory
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = None
        if group.world_size > 1:
            self._thread = threading.Thread(
                target=self._watch, name="sdekit-heartbeat", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        group = self.group
        watched = range(1, group.world_size) if group.rank == 0 else (0,)
        heard = {r: (-1, time.monotonic()) for r in watched}
        while not self._stop.wait(min(1.0, group.dead_after / 4)):
            try:
                self.store.add(f"beat/{group.rank}", 1)  # beating on after a failure was seen
                for r in watched if self.failure is None else ():
                    if self.store.check([f"failed/{r}"]):
                        self._fail(f"rank {r} failed: {self.store.get(f'failed/{r}').decode()}")
                    elif not self.store.check([f"done/{r}"]):
                        beat, now = self.store.add(f"beat/{r}", 0), time.monotonic()
                        if beat != heard[r][0]:
                            heard[r] = (beat, now)
                        elif now - heard[r][1] > group.dead_after:
                            self._fail(
                                f"rank {r} stopped responding (no heartbeat for "
                                f"{group.dead_after:g} s): its process died or froze"
                            )
            except dist.DistError as err:
                self._fail(_store_gone(err))
                return

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = (
                f"{reason}; the finished chunks are kept in {self.directory}: rerun the same "
                f"command to resume"
            )

    def _call(self, method: str, *args):
        try:
            return getattr(self.store, method)(*args)
        except dist.DistError as err:
            self._fail(_store_gone(err))
            raise DistributedError(self.failure) from err

    def check(self) -> None:
        """Raise :class:`DistributedError` if a watched rank failed or fell silent."""
        if self.failure is not None:
            raise DistributedError(self.failure)

    def items_done(self, items: int = 0) -> int:
        """Add ``items`` to the items finished by all ranks; the new total."""
        return self._call("add", "items", items)

    def done(self) -> None:
        self._call("set", f"done/{self.group.rank}", "1")

    def all_done(self) -> bool:
        return self._call("check", [f"done/{r}" for r in range(self.group.world_size)])

    def failed(self, err: BaseException) -> None:
        """Tell the others that this rank stops because of ``err`` (if the store is still up)."""
        try:
            self.store.set(f"failed/{self.group.rank}", _one_line(err))
        except dist.DistError:
            pass  # the store is gone: the others stop hearing this rank

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _lost_contact(err: BaseException) -> str:
    return f"lost contact with the other ranks ({_one_line(err)})"


def _store_gone(err: BaseException) -> str:
    """The store's host (rank 0, or torchrun's agent) is gone."""
    return f"{_lost_contact(err)}: rank 0 probably died"


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True)
class Report:
    """What a run did: ``chunks`` in all, of which this run ``generated`` these (the others were
    resumed from valid shards; ``damaged`` lists the shards that failed their check and were made
    again), on ``world_size`` ranks, in ``wall_s`` seconds, at ``items_per_s`` items generated per
    second while generating."""

    chunks: int
    generated: tuple[int, ...]
    damaged: tuple[int, ...]
    world_size: int
    wall_s: float
    items_per_s: float


Job = Callable[[Chunk], dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], dict]]


def run_chunks(
    job: Job,
    *,
    n: int,
    chunk_size: int,
    seed: int,
    directory: str | os.PathLike,
    config: Any,
    group: Group | None = None,
    progress: bool = False,
    unit: str = "items",
) -> tuple[dict[str, torch.Tensor], list[dict], Report] | None:
    """Run ``job`` over the chunks of ``n`` items across ``group``'s ranks, resumably.

    Every rank calls this with the same arguments (see the module docstring for the protocol).

    Args:
        job: ``job(chunk) -> tensors`` or ``(tensors, info)``: a dict of tensors whose first axis
            is the chunk's items, made with randomness from ``chunk.generators(device)`` (or
            ``chunk.generator(device)``) only, and optionally a JSON-able dict kept with the shard.
        n, chunk_size, seed: the items, the items per chunk (the unit of work, storage and
            resumption; not tied to the world size), and the base seed of :func:`item_seed`.
        directory: where the shards and ``manifest.json`` go: a folder every rank reaches (on
            several nodes, a shared filesystem).
        config: whatever else determines the result (described by :func:`describe` and hashed
            into the manifest with ``n``, ``chunk_size`` and ``seed``).
        group: from :func:`init`; default a single CPU process.
        progress: rank 0 shows one bar over all chunks, in ``unit`` per second.

    Returns:
        On rank 0, ``(tensors, infos, report)``: each key's tensors of all chunks concatenated in
        chunk order, the chunks' infos, and a :class:`Report`. ``None`` on the other ranks.

    Raises:
        ConfigurationError: the ranks disagree on the configuration, or ``directory`` holds
            shards of another one.
        DistributedError: a rank failed, died or stopped responding (after ``group.dead_after``
            seconds); the finished shards stay, and a rerun resumes from them.
    """
    start_time = time.perf_counter()
    group = group if group is not None else single()
    if not callable(job):
        raise InputTypeError(f"job must be callable as job(chunk), got {type(job).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputTypeError(f"seed must be an int, got {type(seed).__name__}")
    parts = chunks(n, chunk_size, seed)
    full = {"n": n, "chunk_size": chunk_size, "seed": seed, "job": describe(config)}
    shards = _Shards(Path(directory), json.loads(json.dumps(full)))
    for r, (sha256, other) in enumerate(group.all_gather((shards.sha256, shards.config))):
        if sha256 != shards.sha256:
            raise ConfigurationError(
                f"the ranks were started with different arguments (rank {r} against rank "
                f"{group.rank}: {_differences(other, shards.config)}); start every rank with the "
                f"same command"
            )
    [refusal] = group.all_gather(shards.prepare() if group.rank == 0 else None)[:1]
    if refusal is not None:
        raise ConfigurationError(refusal)
    checks = [(c.index, shards.read(c)[1]) for c in parts[group.rank :: group.world_size]]
    bad = sorted(pair for gathered in group.all_gather(checks) for pair in gathered if pair[1])
    pending = [k for k, _ in bad]
    damaged = tuple(k for k, why in bad if why != "missing")
    if damaged and group.rank == 0:
        reasons = ", ".join(f"{k} ({why})" for k, why in bad if why != "missing")
        warnings.warn(f"damaged shards in {directory}, made again: chunks {reasons}", stacklevel=2)

    ranks = _Ranks(group, Path(directory))
    generated_items = sum(len(parts[k]) for k in pending)
    bar = tqdm(
        total=n,
        initial=n - generated_items,
        unit=f" {unit}",
        desc="chunks",
        disable=not (progress and group.rank == 0),
        delay=1e-3,  # nothing shown, not even on close, before the first update
    )
    generating = time.perf_counter()
    try:
        for k in pending[group.rank :: group.world_size]:
            ranks.check()
            started = time.perf_counter()
            out = job(parts[k])
            tensors, info = out if isinstance(out, tuple) else (out, {})
            _check_items(tensors, parts[k])
            info = {"rank": group.rank, "wall_s": time.perf_counter() - started, **info}
            shards.write(parts[k], tensors, info)
            bar.update(n - generated_items + ranks.items_done(len(parts[k])) - bar.n)
        ranks.done()
        while group.rank == 0 and not ranks.all_done():
            ranks.check()
            bar.update(n - generated_items + ranks.items_done() - bar.n)
            time.sleep(0.1)
        bar.update(n - bar.n)
    except BaseException as err:
        ranks.failed(err)
        raise
    finally:
        bar.close()
        ranks.stop()
    generation_s = time.perf_counter() - generating
    if group.rank != 0:
        return None

    merged: dict[str, list[torch.Tensor]] = {}
    infos = []
    for chunk in parts:
        shard, why = shards.read(chunk)
        if shard is None:
            raise DistributedError(
                f"the shard of chunk {chunk.index} in {directory} is {why} after the run (was it "
                f"removed or changed meanwhile?); rerun the same command to make it again"
            )
        infos.append(shard["meta"]["info"])
        for key, value in shard["tensors"].items():
            merged.setdefault(key, []).append(value)
    report = Report(
        chunks=len(parts),
        generated=tuple(pending),
        damaged=damaged,
        world_size=group.world_size,
        wall_s=time.perf_counter() - start_time,
        items_per_s=generated_items / generation_s if generated_items else 0.0,
    )
    return {k: torch.cat(v) for k, v in merged.items()}, infos, report


def _check_items(tensors, chunk: Chunk) -> None:
    if not isinstance(tensors, dict) or not all(
        isinstance(t, torch.Tensor) and t.shape[:1] == (len(chunk),) for t in tensors.values()
    ):
        raise InputValueError(
            f"the job must return a dict of tensors whose first axis is the chunk's "
            f"{len(chunk)} items (or a pair of it and an info dict)"
        )


# --------------------------------------------------------------------------- SDE ensembles


def solve_ensemble(
    problem,
    y0: torch.Tensor | Callable[[int, Any], torch.Tensor],
    t0: float,
    t1: float,
    *,
    n_paths: int,
    chunk_size: int,
    seed: int,
    directory: str | os.PathLike,
    group: Group | None = None,
    per_path: bool = True,
    tag: Any = None,
    progress: bool = False,
    **options,
) -> tuple[Solution, Report] | None:
    """:func:`sdekit.solve` over ``n_paths`` paths, in chunks across ranks, resumably.

    Path ``i`` is driven by its own generator, seeded ``item_seed(seed, i)``: the paths are the
    same for any number of processes, and (for problems that treat samples independently) for
    any ``chunk_size``. Call it on every rank of a job started by ``torchrun`` with a group from
    :func:`init`; rerunning after a crash makes only the missing chunks (see :func:`run_chunks`).

    One generator per path costs one small draw per path and step, which dominates a cheap
    problem (about 2 µs per path and step on a CPU); ``per_path=False`` gives each chunk one
    generator instead (:meth:`Chunk.generator`): the paths stay the same for any number of
    processes, but change with ``chunk_size``.

    Args:
        problem, t0, t1, **options: as for :func:`sdekit.solve` (``solver``, ``dt``,
            ``controller``, ``saveat``, ...); not ``generator``.
        y0: one path's initial state, shared by all paths, or ``y0(m, generator) -> (m, *event)``
            drawing a chunk's ``m`` initial states from its generator(s) (a list with one per
            path, or one, as :func:`sdekit.random.randn` takes them).
        n_paths, chunk_size, seed, directory, group, progress: as for :func:`run_chunks`; the
            paths are solved on ``group.device``.
        per_path: one generator per path (default) or one per chunk.
        tag: anything that names what the manifest cannot see, such as the version of the drift
            function or the values it closes over (see :func:`describe`).

    Returns:
        On rank 0, ``(solution, report)``: the solution of all paths in path order, on the CPU,
        with ``ys`` of shape ``(len(ts), n_paths, *event)``, ``stats`` as ``(n_paths,)`` tensors
        and ``status`` and ``t_stopped`` ``None`` unless a path stopped early (``throw=False``);
        ``None`` on the other ranks.
    """
    if "generator" in options:
        raise InputValueError(
            "solve_ensemble draws path i from its own generator, seeded from (seed, i): pass "
            "seed=..., not generator=..."
        )
    group = group if group is not None else single()
    shared = isinstance(y0, torch.Tensor)
    if not (shared or callable(y0)):
        raise InputTypeError(
            f"y0 must be a tensor (one path's initial state) or y0(m, generator) -> tensor, got "
            f"{type(y0).__name__}"
        )

    def job(chunk: Chunk):
        m = len(chunk)
        generator = chunk.generators(group.device) if per_path else chunk.generator(group.device)
        if shared:
            start = y0.to(group.device).expand(m, *y0.shape).clone()
        else:
            start = y0(m, generator)
            if not isinstance(start, torch.Tensor) or start.dim() < 1 or start.shape[0] != m:
                got = (
                    tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
                )
                raise InputValueError(
                    f"y0(m, generator) must return a tensor of m = {m} initial states, shape "
                    f"({m}, *event), got {got}"
                )
        sol = solve(problem, start, t0, t1, generator=generator, progress=False, **options)
        per_item = {f"stats.{k}": torch.as_tensor(v).expand(m) for k, v in sol.stats.items()}
        status = sol.status if sol.status is not None else torch.full((m,), Status.OK)
        t_stopped = sol.t_stopped
        if t_stopped is None:
            t_stopped = torch.full((m,), float(t1), dtype=sol.ts.dtype)
        tensors = {"ys": sol.ys.movedim(1, 0), "status": status, "t_stopped": t_stopped}
        tensors |= per_item
        return tensors, {"ts": sol.ts.tolist(), "ts_dtype": str(sol.ts.dtype)}

    config = {"problem": problem, "y0": y0, "t0": t0, "t1": t1, "options": options, "tag": tag}
    config |= {"per_path": per_path, "device": group.device.type}
    result = run_chunks(
        job,
        n=n_paths,
        chunk_size=chunk_size,
        seed=seed,
        directory=directory,
        config=config,
        group=group,
        progress=progress,
        unit="paths",
    )
    if result is None:
        return None
    tensors, infos, report = result
    dtype = getattr(torch, infos[0]["ts_dtype"].removeprefix("torch."))
    status, t_stopped = tensors.pop("status"), tensors.pop("t_stopped", None)  # None: older runs
    stats = {k.removeprefix("stats."): v for k, v in tensors.items() if k.startswith("stats.")}
    stopped = not bool((status == Status.OK).all())
    solution = Solution(
        ts=torch.tensor(infos[0]["ts"], dtype=dtype),
        ys=tensors["ys"].movedim(0, 1),
        stats=stats,
        status=status if stopped else None,
        t_stopped=t_stopped if stopped else None,
    )
    return solution, report

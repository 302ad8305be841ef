"""The ``sdekit-score`` command line.

::

    sdekit-score train  --data digits --process ve --steps 10000 --out runs/digits
    sdekit-score sample --checkpoint runs/digits --sampler adaptive --out runs/s
    sdekit-score sample --target gmm2d --process vp --sampler em --option steps=500 --out runs/t
    sdekit-score bench  --target gmm2d --process ve
    sdekit-score demo   [--quick] [--out runs/demo]

Exit status: 0 on success; 2 on bad input (a missing or damaged checkpoint, a file that is not
one, an unknown sampler, a negative count, a malformed ``--option``: an
:class:`~sdekit.errors.InputError` or an argument error); 1 when a solve cannot finish
(:class:`~sdekit.SolveError`), an optional dependency is missing (the message names the extra to
install) or a file cannot be written or read (an ``OSError``); 130 when interrupted (Ctrl-C or
SIGTERM: the message says what is kept). These print one line on stderr; anything else is a
defect and propagates with its traceback.

The base install runs every command; the digits need the ``data`` extra (scikit-learn) and PNG
pictures the ``plot`` extra (matplotlib): without it ``sample`` and ``demo`` skip the pictures and
say so. Progress bars go to stderr (``--no-progress`` turns them off). ``--threads`` (default 1) is
the number of torch CPU threads: more help only on idle cores, and a training step of the demo's
size is about ten times slower with 2 threads than with 1 while another process keeps a core busy.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sdekit import SolveError
from sdekit.distributed import describe, write_atomically
from sdekit.errors import InputError
from sdekit_score.adapters import is_diffusers_directory, load_pretrained
from sdekit_score.app.demo import (
    BENCH_COLUMNS,
    DEMO_COLUMNS,
    TARGETS,
    Run,
    bench,
    demo_config,
    format_table,
    max_pairwise_distance,
    nfe_summary,
    run_demo,
    target,
    target_distances,
    target_process,
)
from sdekit_score.app.plotting import NO_PICTURES, available, save_image_grid, save_scatter
from sdekit_score.distributed import DEFAULT_CHUNK_SIZE, draw, launch
from sdekit_score.evaluation.data import TOY2D, MissingExtraError, digits, toy2d
from sdekit_score.sampling.processes import PROCESSES
from sdekit_score.sampling.samplers import SAMPLERS
from sdekit_score.sampling.scores import ScoreModel
from sdekit_score.training.nets import MLP
from sdekit_score.training.trainer import (
    TrainConfig,
    checkpoint_file,
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    train,
)

__all__ = ["main"]

PROG = "sdekit-score"
RUN_FILE = "run.json"  # written by `train` beside its checkpoints: what the model's data look like


class CLIError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are a :class:`CLIError` (one line, no usage dump)."""

    def error(self, message: str):
        raise CLIError(message)


# --------------------------------------------------------------------------- argument types


def _count(text: str) -> int:
    """A positive int."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive(text: str) -> float:
    """A positive finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _device(text: str) -> str:
    """A torch device name, of a kind available here."""
    try:
        kind = torch.device(text).type
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r}") from None
    backend = getattr(torch, kind, None)  # torch.cuda, torch.mps, ...
    if kind != "cpu" and hasattr(backend, "is_available") and not backend.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no {kind} device is available here")
    return text


def parse_value(text: str) -> Any:
    """``--option`` values: int, float, ``true``/``false``, ``none``, else the string itself."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# sample()'s own arguments that `sdekit-score sample` sets from its flags and arguments
SET_BY_THE_COMMAND = {
    "denoise": "--no-denoise",
    "generator": "--seed",
    "device": "--device",
    "progress": "--progress",
    "sampler": "--sampler",
    "shape": "--n, with the shape of the checkpoint or target",
    "score_fn": "--checkpoint or --target",
    "process": "--process",
    "callback": "nothing: the command takes no callback",
}


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["eps_rel=0.05", "brownian=bridge"]`` -> ``{"eps_rel": 0.05, "brownian": "bridge"}``;
    ``dtype=float64`` becomes ``torch.float64``."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier() or not value:
            raise CLIError(f"malformed --option {item!r}: expected key=value, e.g. eps_rel=0.05")
        if key in SET_BY_THE_COMMAND:
            raise CLIError(
                f"--option {item!r}: {key} is set by the command; use {SET_BY_THE_COMMAND[key]}"
            )
        options[key] = parse_value(value)
        if key == "dtype":
            dtype = getattr(torch, value, None)
            if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
                raise CLIError(f"--option {item!r}: expected a floating dtype such as float64")
            options[key] = dtype
    return options


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """The ``sdekit-score`` parser with its four subcommands."""
    parser = _Parser(prog=PROG, description="Score-based generative sampling with sdekit.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(commands.add_parser("train", help="train a score model; resumes from DIR"))
    _add_sample(commands.add_parser("sample", help="sample a checkpoint or an analytic target"))
    _add_bench(commands.add_parser("bench", help="compare the samplers on an analytic target"))
    _add_demo(commands.add_parser("demo", help="train on digits and compare the samplers"))
    return parser


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--no-progress``, common to every command."""
    parser.add_argument(
        "--threads",
        type=_count,
        default=1,
        help="torch CPU threads (default 1: more threads help only on idle cores, and collapse "
        "when another process keeps a core busy)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (they go to stderr)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", type=_device, default="cpu", help="torch device (default cpu)")
    _add_runtime(parser)


def _add_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", choices=("digits", *TOY2D), default="digits")
    parser.add_argument("--process", choices=tuple(PROCESSES), default="vp")
    parser.add_argument("--steps", type=_count, default=10_000, help="total training steps")
    parser.add_argument("--objective", choices=("dsm", "hybrid"), default="dsm")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory")
    parser.add_argument("--net", choices=("mlp", "unet"), default="mlp")
    parser.add_argument(
        "--width", type=_count, default=None, help="MLP hidden width (512) or U-Net base width (32)"
    )
    parser.add_argument(
        "--depth", type=_count, default=None, help="MLP layers (3) or U-Net blocks per level (1)"
    )
    parser.add_argument("--batch-size", type=_count, default=128)
    parser.add_argument(
        "--lr",
        type=_positive,
        default=None,
        help="default: 1e-3 for an MLP with dsm, 2e-4 for a U-Net with dsm, 1e-4 with hybrid",
    )
    parser.add_argument("--ema", type=float, default=0.999, help="EMA decay (default 0.999)")
    parser.add_argument(
        "--sigma-max",
        type=_positive,
        default=None,
        help="VE and EDM: default the data's diameter (VE), 80 (EDM)",
    )
    parser.add_argument("--n-data", type=_count, default=20_000, help="points of a 2-D toy")
    parser.add_argument("--checkpoint-every", type=_count, default=1000)
    _add_common(parser)
    parser.set_defaults(handler=cmd_train)


def _add_sample(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="a checkpoint file or training directory, or a diffusers directory written by "
        "save_pretrained (a pipeline, or a model with its scheduler_config.json)",
    )
    source.add_argument("--target", help=f"an analytic target: {', '.join(TARGETS)}")
    parser.add_argument(
        "--process",
        choices=tuple(PROCESSES),
        default=None,
        help="process of a target (default vp); a checkpoint carries its own",
    )
    parser.add_argument(
        "--sampler", default="adaptive", help=f"one of {', '.join(SAMPLERS)} (default adaptive)"
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a sampler option"
    )
    parser.add_argument("--n", type=_count, default=64, help="number of samples (default 64)")
    parser.add_argument(
        "--batch-size",
        type=_count,
        default=None,
        help="samples per sampler call within a chunk (default: the whole chunk)",
    )
    parser.add_argument(
        "--chunk-size",
        type=_count,
        default=DEFAULT_CHUNK_SIZE,
        help=f"samples per chunk, the unit of work, of the shards in OUT/shards and of resuming "
        f"(default {DEFAULT_CHUNK_SIZE}, whatever the number of processes)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="run as one of the processes of `torchrun --nproc_per_node=N -m sdekit_score.cli -- "
        "sample ...`: they share the chunks out and rank 0 writes the output (docs/distributed.md)",
    )
    parser.add_argument("--no-denoise", action="store_true", help="skip the final denoising")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    _add_common(parser)
    parser.set_defaults(handler=cmd_sample)


def _add_bench(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="gmm2d", help=f"one of {', '.join(TARGETS)}")
    parser.add_argument("--process", choices=tuple(PROCESSES), default="ve", help="default ve")
    parser.add_argument(
        "--samplers",
        default=None,
        help="comma-separated (default: em, pc, ode, ggf at eps_rel 0.02 and 0.05, adaptive, "
        "unipc, dpmpp_2m_sde; als and cas too on ve)",
    )
    parser.add_argument("--n", type=_count, default=1000, help="samples per sampler")
    parser.add_argument("--batch-size", type=_count, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write bench.json here")
    _add_common(parser)
    parser.set_defaults(handler=cmd_bench)


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a smoke run of about six minutes")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sampling (default 0); the models train with fixed seeds, so a rerun in "
        "the same --out reuses them",
    )
    parser.add_argument("--train-steps", type=_count, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=_count, default=None, help=argparse.SUPPRESS)
    _add_runtime(parser)
    parser.set_defaults(handler=cmd_demo)


# --------------------------------------------------------------------------- train


def _training_data(args: argparse.Namespace, data_range: tuple[float, float]) -> torch.Tensor:
    """The data set in ``data_range``: digits ``(N, 1, 8, 8)`` or toy points ``(N, 2)``."""
    if args.data == "digits":
        return digits(data_range).tensors[0]
    points = toy2d(args.data, args.n_data, generator=args.seed).tensors[0]
    lo, hi = data_range
    return lo + (hi - lo) * (points + 1.0) / 2.0  # the toys live in about [-1, 1]^2


def _train_config(args: argparse.Namespace, data: torch.Tensor) -> TrainConfig:
    """The :class:`TrainConfig` of the ``train`` arguments, for ``data`` as the net will see it."""
    if args.net == "mlp":
        net_kwargs = {"dim": data[0].numel(), "hidden": args.width or 512, "depth": args.depth or 3}
    else:
        net_kwargs = {"base_width": args.width or 32, "num_res_blocks": args.depth or 1}
    process_kwargs = {}
    if args.process == "ve":
        process_kwargs["sigma_max"] = args.sigma_max or round(max_pairwise_distance(data), 1)
    elif args.sigma_max is not None:
        process_kwargs["sigma_max"] = args.sigma_max
    lr = args.lr or (1e-3 if args.net == "mlp" and args.objective == "dsm" else None)
    return TrainConfig(
        net=args.net,
        net_kwargs=net_kwargs,
        process=args.process,
        process_kwargs=process_kwargs,
        # EDM's time is its noise level, up to sigma_max: the network sees log(sigma) instead.
        conditioning="log_sigma" if args.process == "edm" else "999t",
        objective=args.objective,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        ema_decay=args.ema,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )


def cmd_train(args: argparse.Namespace) -> None:
    """Train (or resume) a score model; write checkpoints and ``run.json`` into ``--out``."""
    if args.net == "unet" and args.data != "digits":
        raise CLIError("--net unet needs image data (--data digits); use --net mlp for 2-D toys")
    if args.process not in ("ve", "edm") and args.sigma_max is not None:
        raise CLIError("--sigma-max applies to --process ve or edm only")
    data = _training_data(args, PROCESSES[args.process].data_range)
    run_info = {"data": args.data, "image_shape": list(data.shape[1:]) if data.ndim == 4 else None}
    if args.net == "mlp":
        data = data.flatten(1)
    config = _train_config(args, data)
    args.out.mkdir(parents=True, exist_ok=True)
    resumed = latest_checkpoint(args.out)
    if resumed is None:  # a resumed run's is written once train has checked its config and data
        _write_json(args.out / RUN_FILE, run_info)
    start = time.perf_counter()
    with warnings.catch_warnings():  # a run past --steps is said below, in the command's words
        warnings.filterwarnings("ignore", message=r".* past steps=")
        result = train(config, data, args.out, device=args.device, progress=args.progress)
    if resumed is not None:
        _write_json(args.out / RUN_FILE, run_info)
    if result.step > config.steps:
        print(
            f"{args.out} is already at step {result.step} (--steps {config.steps}): nothing to do"
        )
        return
    loss = result.history["loss"][-100:]
    first = 0 if resumed is None else checkpoint_step(resumed)
    steps = f"{result.step} steps" if first == 0 else f"steps {first + 1}-{result.step}"
    print(
        f"trained {steps} in {time.perf_counter() - start:.1f} s; "
        f"final loss {sum(loss) / max(len(loss), 1):.4g}; checkpoint {result.checkpoint}"
    )


def _write_json(path: Path, value) -> None:
    """``path`` holds the whole of ``value`` or what it held before, whenever the run stops."""
    text = json.dumps(value, indent=2).encode()
    write_atomically(path, lambda f: f.write(text))


# --------------------------------------------------------------------------- sample


def _checkpoint_path(path: Path) -> Path:
    """``path`` itself, or the latest checkpoint in the directory ``path``."""
    try:
        return checkpoint_file(path)
    except FileNotFoundError as err:
        raise CLIError(str(err)) from None


def _load_model(path: Path, device: str) -> tuple[ScoreModel, tuple[int, ...], list | None]:
    """The EMA score model of a checkpoint, the event shape it samples, and its image shape.

    The image shape comes from the ``run.json`` that ``train`` wrote beside the checkpoint (an MLP
    trained on digits samples flat vectors that are images of shape ``(1, 8, 8)``).
    """
    try:
        model = load_checkpoint(path, device=device)
    except (RuntimeError, KeyError, EOFError, OSError) as err:
        raise CLIError(f"cannot load checkpoint {path}: {err}") from None
    info_file = path.parent / RUN_FILE
    try:
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    except ValueError as err:
        raise CLIError(
            f"cannot read {info_file} ({err}): write it again as "
            f'{{"image_shape": [C, H, W]}} (or null for vectors), or train into a new --out'
        ) from None
    image_shape = info.get("image_shape")
    if isinstance(model.net, MLP):
        return model, (model.net.dim,), image_shape
    if image_shape is None:  # trained in Python: the checkpoint knows its data's shape
        image_shape = list(getattr(model, "event_shape", ())) or None
    if image_shape is None:
        raise CLIError(
            f"{info_file} is missing and the checkpoint is of an older version: cannot tell the "
            f'image size of {path}; write {RUN_FILE} there as {{"image_shape": [C, H, W]}}'
        )
    return model, tuple(image_shape), image_shape


def _load_diffusers(path: Path, device: str):
    """``(score_fn, process, event_shape)`` of a diffusers ``save_pretrained`` directory."""
    try:
        return load_pretrained(path, device=device)
    except (RuntimeError, KeyError, ValueError, OSError, pickle.UnpicklingError) as err:
        if isinstance(err, InputError):
            raise
        raise CLIError(f"cannot load diffusers model {path}: {err}") from None


def _check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise CLIError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return name


def cmd_sample(args: argparse.Namespace) -> None:
    """Sample a checkpoint or a target in chunks, with their shards in ``OUT/shards`` (a rerun
    resumes; with ``--distributed`` the chunks are shared out across torchrun's processes); then
    (rank 0) write ``samples.pt``, ``stats.json`` and a PNG."""
    run = Run(args.sampler, _check_sampler(args.sampler), parse_options(args.option))
    if "throw" in run.options:
        raise CLIError(
            "--option throw: the command keeps whole chunks (a chunk with a stalled sample fails, "
            "the finished chunks stay, and a rerun with a larger max_steps resumes); throw=False "
            "is for sdekit_score.sample in Python"
        )
    if args.checkpoint is not None and args.process is not None:
        raise CLIError(
            f"--process {args.process}: a checkpoint samples on the process it was trained "
            f"for; --process chooses the process of a --target"
        )
    args.process = args.process or "vp"
    with launch(args.device, args.distributed) as group:
        reference = None
        if args.checkpoint is not None and is_diffusers_directory(args.checkpoint):
            score_fn, process, event_shape = _load_diffusers(args.checkpoint, str(group.device))
            image_shape = list(event_shape)
            source = {"checkpoint": str(args.checkpoint), "format": "diffusers"}
            tag = None
        elif args.checkpoint is not None:
            path = _checkpoint_path(args.checkpoint)
            score_fn, event_shape, image_shape = _load_model(path, str(group.device))
            process, source, tag = score_fn.process, {"checkpoint": str(path)}, None
        else:
            mixture = target(args.target)
            process = target_process(mixture, args.process)
            score_fn, event_shape, image_shape = mixture.score(process), (mixture.dim,), None
            reference = mixture.sample(args.n, generator=args.seed + 1, dtype=torch.float64)
            source = tag = {"target": args.target, "process": args.process}
        drawn = draw(
            score_fn,
            process,
            event_shape,
            run,
            n=args.n,
            directory=args.out / "shards",
            seed=args.seed,
            chunk_size=args.chunk_size,
            batch_size=args.batch_size,
            denoise=not args.no_denoise,
            group=group,
            tag=tag,
            progress=args.progress,
        )
    if drawn is None:
        return  # this rank's chunks are in OUT/shards; rank 0 merges them and writes the output
    x, nfe, report = drawn
    stats = source | {"sampler": run.sampler, "options": describe(run.options), "n": args.n}
    stats |= {"seed": args.seed, "denoise": not args.no_denoise, "wall_s": report.wall_s}
    stats |= {"chunk_size": args.chunk_size, "chunks_generated": len(report.generated)}
    stats |= {"world_size": report.world_size, "samples_per_s": report.items_per_s}
    stats |= nfe_summary(nfe)
    if reference is not None:
        stats["distances"] = target_distances(x, reference)
    _write_samples(args.out, x, stats, image_shape, process.data_range, reference)
    print(json.dumps(stats, indent=2))


def _write_samples(out: Path, x, stats, image_shape, data_range, reference) -> None:
    """``samples.pt``, ``stats.json`` and, for images or 2-D points, ``samples.png``."""
    out.mkdir(parents=True, exist_ok=True)
    if image_shape is not None:
        x = x.reshape(-1, *image_shape)
    path = out / "samples.pt"
    try:
        write_atomically(path, lambda f: torch.save(x.cpu(), f))
        _write_json(out / "stats.json", stats)
    except (OSError, RuntimeError) as err:  # torch.save raises RuntimeError on some paths
        raise OSError(
            f"cannot write {path.parent}: {' '.join(str(err).split())}; the samples' shards "
            f"are kept in {out / 'shards'}: rerun the same command once the folder is writable "
            f"to write them out"
        ) from None
    title = f"{stats['sampler']}: NFE {stats['nfe']:.0f}"
    images = image_shape is not None and image_shape[0] == 1
    points = x.ndim == 2 and x.shape[1] == 2
    if (images or points) and not available():
        print(f"{PROG}: note: {NO_PICTURES}", file=sys.stderr)
    elif images:
        save_image_grid(x[:100], out / "samples.png", data_range=data_range, title=title)
    elif points:
        save_scatter(x, out / "samples.png", reference=reference, title=title)


# --------------------------------------------------------------------------- bench and demo


def cmd_bench(args: argparse.Namespace) -> None:
    """Print the sampler comparison on an analytic target (and write ``bench.json``)."""
    runs = None
    if args.samplers is not None:
        runs = [Run(name, _check_sampler(name)) for name in args.samplers.split(",")]
    if args.out is not None:  # before the work, not after
        args.out.mkdir(parents=True, exist_ok=True)
    rows = bench(
        args.target,
        args.process,
        runs=runs,
        n=args.n,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    print(f"{args.target}, {args.process.upper()} process, exact score, {args.n} samples")
    print(format_table(rows, BENCH_COLUMNS))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps(rows, indent=2))


def cmd_demo(args: argparse.Namespace) -> None:
    """Train on the digits, compare the samplers, write the figures, print the table."""
    config = demo_config(args.quick)
    if args.train_steps is not None:
        for model in config.models.values():
            model.steps = args.train_steps
    if args.n is not None:
        config.n = args.n
    config.seed = args.seed
    results = run_demo(args.out, config, progress=args.progress)
    rows = [row for row in results["rows"] if row["label"] in config.figure]
    print(format_table(rows, DEMO_COLUMNS))
    check = results["acceptance"]
    print(
        f"GGF vs EM-1000: {check['confident']:.1%} of GGF samples classified with confidence "
        f">= 0.9 (target 80%), FD ratio {check['fd_ratio']:.3f} (target <= 1.1), NFE ratio "
        f"{check['nfe_ratio']:.3f} (target < 0.5): {'met' if check['met'] else 'NOT met'}"
        + (
            " (a smoke run: a briefly trained model, few samples; the targets are the full demo's)"
            if args.quick
            else ""
        )
    )
    print(
        f"training {results['train_s']:.0f} s, total {results['total_s']:.0f} s; "
        f"grids, quality_vs_nfe.png and results.json in {args.out}"
    )


# --------------------------------------------------------------------------- entry point


def _fail(err: BaseException, status: int) -> int:
    """Report ``err`` as one line on stderr; return ``status``."""
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sdekit-score``; returns the exit status (see the module docstring).

    Torch's thread count is restored afterwards, so that calling ``main`` in a process (as the
    tests do) leaves it as it was.
    """
    threads = torch.get_num_threads()
    args = None
    main_thread = threading.current_thread() is threading.main_thread()  # handlers go there
    on_terminate = signal.getsignal(signal.SIGTERM)
    if main_thread:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser().parse_args(argv)
        torch.set_num_threads(args.threads)
        args.handler(args)
    except (CLIError, InputError) as err:
        return _fail(err, 2)
    except (SolveError, MissingExtraError) as err:
        return _fail(err, 1)
    except OSError as err:  # an --out that cannot be written, a file that cannot be read
        return _fail(err, 1)
    except KeyboardInterrupt:
        kept = _KEPT_ON_INTERRUPT.get(getattr(args, "handler", None), "")
        print(f"{PROG}: interrupted{kept}", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if on_terminate is None else on_terminate)
    return 0


def _terminate(signum, frame):
    """SIGTERM (a scheduler's pre-emption, torchrun stopping its workers) as Ctrl-C: the
    message says what is kept. Every file is written atomically, so stopping anywhere is safe."""
    raise KeyboardInterrupt


_KEPT_ON_INTERRUPT = {
    cmd_train: ": the checkpoints written so far are kept; rerun the same command to resume",
    cmd_sample: ": the finished chunks are kept in OUT/shards; rerun the same command to resume",
}


if __name__ == "__main__":
    sys.exit(main())

"""The jobs behind the command line: batched sampling, the sampler comparison and the main demo.

- :func:`draw`: ``n`` samples in batches from one generator, with per-sample NFE and wall time;
- :func:`bench`: every sampler on an analytic target (:data:`TARGETS`), scored against exact draws;
- :func:`run_demo`: train a score model on the 8x8 digits, sample it with EM (1000 steps), GGF,
  PC, the probability-flow ODE and CAS, and score each in the digits classifier's feature space.

The demo's settings (:func:`demo_config`) were chosen by measurement; ``docs/demo.md`` records the
runs that chose them and the figure they produce.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdekit.errors import InputValueError
from sdekit_score.app.plotting import NO_PICTURES, available, save_image_grid, save_quality_vs_nfe
from sdekit_score.evaluation.data import digits
from sdekit_score.evaluation.metrics import (
    classifier_confidence,
    digits_classifier,
    digits_fd,
    gaussian_frechet,
    sliced_wasserstein,
)
from sdekit_score.evaluation.targets import GaussianMixture
from sdekit_score.sampling.precision import weights_of
from sdekit_score.sampling.processes import ForwardProcess, make_process
from sdekit_score.sampling.samplers import ScoreFn, sample
from sdekit_score.sampling.scores import ScoreModel
from sdekit_score.training.nets import MLP
from sdekit_score.training.trainer import TrainConfig, build_process, train

__all__ = [
    "DemoConfig",
    "acceptance",
    "Run",
    "TARGETS",
    "bench",
    "demo_config",
    "draw",
    "format_table",
    "max_pairwise_distance",
    "run_demo",
    "target",
    "target_process",
]


# --------------------------------------------------------------------------- sampling in batches


@dataclass(frozen=True)
class Run:
    """One sampler setting: ``sampler`` with ``options``, shown as ``label``; ``model`` names the
    trained model it uses when there are several (a key of :attr:`DemoConfig.models`)."""

    label: str
    sampler: str
    options: dict[str, Any] = field(default_factory=dict)
    model: str = "main"


def draw(
    score_fn: ScoreFn,
    process: ForwardProcess,
    event_shape: tuple[int, ...],
    run: Run,
    *,
    n: int,
    seed: int = 0,
    batch_size: int | None = None,
    denoise: bool = True,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``n`` samples of ``run``, in batches of ``batch_size`` drawn from one generator.

    Returns ``(samples, nfe, wall_seconds)``: the samples ``(n, *event_shape)`` in generation
    order and the score evaluations of each sample ``(n,)``.
    """
    weights = weights_of(score_fn)
    device = weights.device if weights is not None else torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(seed)  # the samples' device
    batch_size = batch_size or n
    samples, nfe = [], []
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, n, batch_size):
            shape = (min(batch_size, n - first), *event_shape)
            x, stats = sample(
                score_fn,
                process,
                shape,
                sampler=run.sampler,
                generator=generator,
                denoise=denoise,
                progress=progress,
                **run.options,
            )
            samples.append(x)
            nfe.append(stats["nfe"])
    return torch.cat(samples), torch.cat(nfe), time.perf_counter() - start


def nfe_summary(nfe: torch.Tensor) -> dict[str, float]:
    """Mean, min and max score evaluations per sample."""
    nfe = nfe.double()
    return {"nfe": nfe.mean().item(), "nfe_min": nfe.min().item(), "nfe_max": nfe.max().item()}


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table: ``columns`` are ``(key, header, format)``; missing values print ``-``."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append(
            [format(row[key], fmt) if row.get(key) is not None else "-" for key, _, fmt in columns]
        )
    widths = [max(len(line[k]) for line in cells) for k in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def max_pairwise_distance(points: torch.Tensor, limit: int = 2000) -> float:
    """The largest Euclidean distance between two of (the first ``limit`` of) ``points``.

    Song & Ermon (2020, technique 1) choose a VE process's ``sigma_max`` about this large, so that
    the prior covers every pair of data points.
    """
    flat = points[:limit].flatten(1).double()
    return torch.cdist(flat, flat).max().item()


# --------------------------------------------------------------------------- analytic targets

TARGETS: dict[str, Callable[[], GaussianMixture]] = {
    "gmm2d": GaussianMixture.ring2d,
    "gmm256": lambda: GaussianMixture.random(256),
}
_TARGET_RANGE = (-1.0, 1.0)


def target(name: str) -> GaussianMixture:
    """The analytic target ``name`` (one of :data:`TARGETS`), with data in ``[-1, 1]``."""
    if name not in TARGETS:
        raise InputValueError(f"unknown target {name!r}: choose one of {', '.join(TARGETS)}")
    return TARGETS[name]()


def target_process(mixture: GaussianMixture, kind: str) -> ForwardProcess:
    """The process ``kind`` (a key of :data:`~sdekit_score.sampling.processes.PROCESSES`) for
    ``mixture``'s data range ``[-1, 1]``.

    For VE and EDM, ``sigma_max`` is the largest distance between two exact draws (rounded up).
    """
    kwargs: dict[str, Any] = {"data_range": _TARGET_RANGE}
    if kind in ("ve", "edm"):
        diameter = max_pairwise_distance(mixture.sample(2000, generator=0))
        kwargs["sigma_max"] = float(math.ceil(diameter))
    return make_process(kind, **kwargs)


def target_distances(samples: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Sliced Wasserstein and Gaussian Fréchet distances of samples to exact draws."""
    flat = samples.flatten(1).to(reference.dtype)
    return {
        "sliced_wasserstein": sliced_wasserstein(flat, reference, generator=0),
        "frechet": gaussian_frechet(flat, reference),
    }


def default_runs(process: ForwardProcess) -> list[Run]:
    """The samplers at their papers' defaults (GGF at ``eps_rel = 0.02``) and the recommended
    ones at theirs; ALS and CAS only on VE, the process their defaults were made for."""
    runs = [
        Run("em-1000", "em", {"steps": 1000}),
        Run("pc-1000", "pc", {"steps": 1000}),
        Run("ode", "ode"),
        Run("ggf-0.02", "ggf", {"eps_rel": 0.02}),
        Run("ggf-0.05", "ggf", {"eps_rel": 0.05}),
        Run("adaptive", "adaptive"),
        Run("unipc", "unipc"),
        Run("dpmpp_2m_sde", "dpmpp_2m_sde"),
    ]
    if process.kind == "ve":
        runs += [Run("als", "als"), Run("cas", "cas")]
    return runs


def bench(
    name: str,
    kind: str,
    *,
    runs: Sequence[Run] | None = None,
    n: int = 1000,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
) -> list[dict]:
    """Each of ``runs`` (default :func:`default_runs`) on the target ``name`` under process
    ``kind``, with the exact score: NFE, wall time and distances to ``n`` exact draws."""
    mixture = target(name)
    process = target_process(mixture, kind)
    reference = mixture.sample(n, generator=seed + 1, dtype=torch.float64)
    rows = []
    for run in runs or default_runs(process):
        x, nfe, wall = draw(
            mixture.score(process),
            process,
            (mixture.dim,),
            run,
            n=n,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )
        row = {"label": run.label, "sampler": run.sampler, "options": run.options, "wall_s": wall}
        rows.append(row | nfe_summary(nfe) | target_distances(x, reference))
    return rows


BENCH_COLUMNS = [
    ("label", "sampler", "s"),
    ("nfe", "NFE/sample", ".1f"),
    ("wall_s", "wall s", ".2f"),
    ("sliced_wasserstein", "sliced W2", ".4f"),
    ("frechet", "Fréchet", ".4f"),
]


# --------------------------------------------------------------------------- the main demo


@dataclass
class DemoConfig:
    """The demo: score models to train on the digits (by name), sampler runs, sample count.

    ``figure`` lists the runs that get an image grid and a row in the printed table; the other
    runs only add points to the quality-vs-NFE plot.
    """

    models: dict[str, TrainConfig]
    runs: list[Run]
    figure: list[str]
    n: int = 1000
    batch_size: int = 1000
    seed: int = 0


def _digits_mlp(process: str, steps: int) -> TrainConfig:
    """An MLP score model for the flattened digits (measured: 512 x 3 layers, batch 256, lr 2e-3)."""
    return TrainConfig(
        net="mlp",
        net_kwargs={"dim": 64, "hidden": 512, "depth": 3},
        process=process,
        steps=steps,
        batch_size=256,
        lr=2e-3,
        ema_decay=0.999,
        checkpoint_every=1000,
    )


def demo_config(quick: bool = False) -> DemoConfig:
    """The demo's measured settings (see ``docs/demo.md``); ``quick`` is a smoke run.

    One VP model (14k steps) serves every sampler: CAS and annealed Langevin run on the noise
    levels ``σ/α`` of the scaled state ``x/α``. 2000 samples per run: at 1000 the Fréchet distance
    of one run varies by about 7% from seed to seed, too much to compare samplers 10% apart.
    """
    models = {"main": _digits_mlp("vp", 1500 if quick else 14_000)}
    figure = [
        Run("em-1000", "em", {"steps": 1000}),
        Run("ggf", "ggf", {"eps_rel": 0.02}),
        Run("pc", "pc", {"steps": 1000}),
        Run("ode", "ode"),
        Run("cas", "cas"),
    ]
    curve = [Run(f"em-{k}", "em", {"steps": k}) for k in (100, 250, 500)]
    curve += [Run(f"ggf-{e}", "ggf", {"eps_rel": e}) for e in (0.05, 0.1)]
    curve += [Run("als", "als")]
    runs = figure if quick else figure + curve
    return DemoConfig(models, runs, [r.label for r in figure], n=200 if quick else 2000)


DEMO_COLUMNS = [
    ("label", "sampler", "s"),
    ("nfe", "NFE/sample", ".1f"),
    ("wall_s", "wall s", ".1f"),
    ("fd", "digits FD", ".2f"),
    ("confident", "conf>=0.9", ".3f"),
    ("entropy", "entropy", ".3f"),
]


def _train_digits(config: TrainConfig, out: Path, progress: bool) -> ScoreModel:
    """Train (or resume, from ``out``) ``config`` on the digits in its process's range."""
    images = digits(build_process(config).data_range).tensors[0]
    data = images.flatten(1) if config.net == "mlp" else images
    return train(config, data, out, progress=progress).score_fn


def _evaluate(
    run: Run,
    model: ScoreModel,
    classifier,
    config: DemoConfig,
    out: Path,
    *,
    figures: bool,
    progress: bool,
) -> dict:
    """Draw ``config.n`` samples of ``run`` and score them; save a grid if it is in the figure
    (and ``figures``)."""
    data_range = model.process.data_range
    event = (64,) if isinstance(model.net, MLP) else (1, 8, 8)
    x, nfe, wall = draw(
        model,
        model.process,
        event,
        run,
        n=config.n,
        seed=config.seed,
        batch_size=config.batch_size,
        progress=progress,
    )
    images = x.reshape(-1, 1, 8, 8).clamp(*data_range)
    confidence = classifier_confidence(images, classifier, data_range=data_range)
    reference = digits(data_range).tensors[0]
    row = {"label": run.label, "sampler": run.sampler, "options": run.options, "wall_s": wall}
    row |= nfe_summary(nfe) | {
        "fd": digits_fd(images, reference, classifier, data_range=data_range),
        "confident": confidence.confident,
        "entropy": confidence.entropy,
    }
    if figures and run.label in config.figure:
        title = f"{run.label}: NFE {row['nfe']:.0f}, FD {row['fd']:.1f}"
        save_image_grid(
            images[:100], out / f"grid_{run.label}.png", data_range=data_range, title=title
        )
    return row


def acceptance(rows: Sequence[dict], reference: str = "em-1000", fast: str = "ggf") -> dict:
    """The issue's acceptance figures for ``fast`` against ``reference``.

    Met when at least 80% of ``fast``'s samples are classified with confidence >= 0.9, and its
    Fréchet distance is within 10% of ``reference``'s at fewer than half its evaluations.
    """
    by_label = {row["label"]: row for row in rows}
    fast_row, ref_row = by_label[fast], by_label[reference]
    figures = {
        "confident": fast_row["confident"],
        "fd_ratio": fast_row["fd"] / ref_row["fd"],
        "nfe_ratio": fast_row["nfe"] / ref_row["nfe"],
    }
    met = figures["confident"] >= 0.8 and figures["fd_ratio"] <= 1.1 and figures["nfe_ratio"] < 0.5
    return figures | {"met": met}


def _say(message: str) -> None:
    """Print a line now, also when stdout is a pipe or a file."""
    print(message, flush=True)


def run_demo(
    out_dir: str | Path,
    config: DemoConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] = _say,
) -> dict:
    """Train ``config.models`` on the digits (resuming from ``out_dir/model_<name>``), draw and
    score every run, write the grids, ``quality_vs_nfe.png`` and ``results.json`` to ``out_dir``.

    ``progress`` shows a progress bar (on stderr) for each training, the digits classifier's
    training (the first time only: it is cached, see :func:`~sdekit_score.evaluation.metrics.digits_classifier`)
    and each sampler; ``log`` gets a line as each phase starts and ends. Without matplotlib the
    PNG files are skipped (with a note).

    Returns the results: ``rows`` (per run: label, sampler, options, NFE mean/min/max, wall time,
    digits FD, fraction classified with confidence >= 0.9, mean predictive entropy), the
    ``acceptance`` figures, and the training and total times in seconds.
    """
    out = Path(out_dir)
    start = time.perf_counter()
    models = {}
    for name, train_config in config.models.items():
        log(f"training the {name} model: {train_config.steps} steps, in {out / f'model_{name}'}")
        models[name] = _train_digits(train_config, out / f"model_{name}", progress)
    train_s = time.perf_counter() - start
    log("loading the digits classifier (trained and cached on first use)")
    classifier = digits_classifier(progress=progress)
    figures = available()
    if not figures:
        log(f"note: {NO_PICTURES}")
    rows = []
    for k, run in enumerate(config.runs, 1):
        log(f"sampling {run.label} ({k}/{len(config.runs)}): {config.n} samples")
        model = models[run.model]
        rows.append(
            _evaluate(run, model, classifier, config, out, figures=figures, progress=progress)
        )
        log(f"{run.label}: NFE {rows[-1]['nfe']:.1f}, FD {rows[-1]['fd']:.2f}")
    if figures:
        title = "8x8 digits: quality vs NFE"
        save_quality_vs_nfe(rows, out / "quality_vs_nfe.png", title=title)
    results = {
        "rows": rows,
        "acceptance": acceptance(rows),
        "train_s": train_s,
        "total_s": time.perf_counter() - start,
        "config": dataclasses.asdict(config),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results

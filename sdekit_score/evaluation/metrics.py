"""Sample-quality metrics that need no download.

- Fréchet distance between Gaussians fitted to two feature sets (the FID formula, Heusel et al.
  2017), computed exactly in float64:

      FD = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)),

  either on raw samples (:func:`gaussian_frechet`) or in the penultimate layer of a small digits
  classifier (:func:`digits_fd`, a "digits FID").
- Classifier confidence: the fraction of samples the classifier labels with probability >= 0.9,
  and the mean predictive entropy (low for clean, recognisable digits).
- Sliced Wasserstein distance (Rabin et al. 2011) for low-dimensional data.

The digits classifier is trained once per user (seeded, about ten seconds on a CPU) on
scikit-learn's digits in ``[-1, 1]`` and cached under :func:`default_cache_dir`; images in another
range are rescaled by ``data_range``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sdekit.checks import positive_int
from sdekit.errors import InputTypeError, InputValueError
from sdekit.random import GeneratorLike, as_generator
from sdekit_score.evaluation.data import digits

__all__ = [
    "Confidence",
    "DigitsClassifier",
    "classifier_confidence",
    "default_cache_dir",
    "digits_classifier",
    "digits_fd",
    "frechet_distance",
    "gaussian_frechet",
    "held_out_accuracy",
    "sliced_wasserstein",
    "train_digits_classifier",
]

# Bump when DigitsClassifier or its training changes, so stale cached weights are not loaded.
_CLASSIFIER_VERSION = 2


class DigitsClassifier(nn.Module):
    """A small CNN for 8x8 digits in ``[-1, 1]``: three 3x3 convolutions (8x8 -> 4x4 -> 2x2), a
    128-unit feature layer (:meth:`features`, used by :func:`digits_fd`) and 10 logits."""

    def __init__(self, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * width, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``(batch, feature_dim)`` of images ``(batch, 1, 8, 8)``."""
        if x.shape[1:] != (1, 8, 8):
            raise InputValueError(
                f"expected digits of shape (batch, 1, 8, 8), got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _split(seed: int, test_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and held-out digits, a permutation seeded by ``seed``."""
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(seed))
    n_test = int(test_fraction * len(order))
    return order[n_test:], order[:n_test]


def train_digits_classifier(
    seed: int = 0, epochs: int = 100, test_fraction: float = 0.2, *, progress: bool = False
) -> DigitsClassifier:
    """Train a :class:`DigitsClassifier` on the digits outside the held-out split of ``seed``.

    Adam (lr 1e-3), batches of 64, random shifts of up to one pixel as augmentation, 100 epochs
    (about ten seconds on a CPU): about 99% held-out accuracy, and about 99% of the real digits get
    a class with confidence >= 0.9, so that figure for samples measures them and not the
    classifier's hesitancy (at 30 epochs only 92% of the real digits do). The global RNG is left
    untouched; ``progress`` shows a progress bar over the epochs.
    """
    images, labels = digits((-1.0, 1.0)).tensors
    train, _ = _split(seed, test_fraction)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in tqdm(range(epochs), disable=not progress, desc="digits classifier", unit="epoch"):
        for batch in train[torch.randperm(len(train), generator=gen)].split(64):
            loss = F.cross_entropy(model(_random_shift(images[batch], gen)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def held_out_accuracy(
    classifier: DigitsClassifier, seed: int = 0, test_fraction: float = 0.2
) -> float:
    """Accuracy of ``classifier`` on the digits held out by :func:`train_digits_classifier`."""
    images, labels = digits((-1.0, 1.0)).tensors
    _, test = _split(seed, test_fraction)
    predictions = classifier.eval()(images[test]).argmax(dim=1)
    return (predictions == labels[test]).float().mean().item()


def _random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by -1, 0 or 1 pixel in each direction, filling with the background (-1)."""
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dy, dx = torch.randint(3, (2, len(x)), generator=generator)
    rows = (dy[:, None] + torch.arange(8))[:, None, :, None].expand(-1, 1, 8, 10)
    shifted = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(8))[:, None, None, :].expand(-1, 1, 8, 8)
    return shifted.gather(3, cols)


def default_cache_dir() -> Path:
    """sdekit's per-user cache: ``$SDEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/sdekit``, else
    ``~/.cache/sdekit``."""
    if os.environ.get("SDEKIT_CACHE_DIR"):
        return Path(os.environ["SDEKIT_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "sdekit"


def digits_classifier(
    cache_dir: str | os.PathLike | None = None, *, seed: int = 0, progress: bool = False
) -> DigitsClassifier:
    """The digits classifier for ``seed``: loaded from ``cache_dir`` (default
    :func:`default_cache_dir`), or trained (with a progress bar if ``progress``) and cached there.

    The cache file is named after the classifier's version, so a changed classifier is retrained;
    it is written atomically (temp file + ``os.replace``) and loaded with ``weights_only=True``.
    An unreadable cache file is replaced.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"digits_classifier_v{_CLASSIFIER_VERSION}_seed{seed}.pt"
    if path.exists():
        model = DigitsClassifier()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)["model"]
            model.load_state_dict(state)
            return model.eval()
        except (RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError):
            pass
    model = train_digits_classifier(seed, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".digits-classifier-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": model.state_dict()}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return model


def _to_unit_range(x: torch.Tensor, data_range: tuple[float, float]) -> torch.Tensor:
    """Map images from ``data_range`` to the classifier's ``[-1, 1]``."""
    lo, hi = data_range
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def _flat(x: torch.Tensor, name: str) -> torch.Tensor:
    """Samples ``(N, *event)`` as float64 ``(N, D)``; at least two are needed for a covariance."""
    if x.ndim < 2 or x.shape[0] < 2:
        raise InputValueError(
            f"{name} must have shape (N, *event) with N >= 2, got {tuple(x.shape)}"
        )
    flat = x.detach().flatten(1).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        bad = int((~torch.isfinite(flat)).any(dim=1).sum())
        raise InputValueError(f"{name} holds non-finite values (NaN/Inf) in {bad} of its samples")
    return flat


def _features(x: torch.Tensor, name: str) -> torch.Tensor:
    """Features ``(N, D)`` as float64 (samples ``(N, *event)`` go to :func:`gaussian_frechet`)."""
    if x.ndim != 2:
        raise InputValueError(
            f"{name} must be features of shape (N, D), got {tuple(x.shape)}; "
            "for samples (N, *event) use gaussian_frechet"
        )
    return _flat(x, name)


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    eigenvalues, vectors = torch.linalg.eigh(a)
    return (vectors * eigenvalues.clamp_min(0.0).sqrt()) @ vectors.T


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance of Gaussians fitted to features ``(N, D)`` and ``(M, D)``.

    The trace term uses ``tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``, whose argument is symmetric PSD,
    so two symmetric eigendecompositions in float64 give it exactly (no scipy ``sqrtm``).

    As an estimator of the distance between the two laws it is biased upwards, by about
    ``D² (1/N + 1/M) / 4`` for nearby laws (two draws of 2000 from one 128-D Gaussian: 4.3; of
    500: 17):
    compare distances only at equal sample sizes, and read a floor from two independent draws
    of the reference law.
    """
    a, b = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise InputValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0.0).sqrt().sum()
    distance = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2.0 * cross
    return distance.clamp_min(0.0).item()


def _same_events(a: torch.Tensor, b: torch.Tensor) -> None:
    """Samples compared element by element must have one event shape (a channels-first image
    against a flattened or channels-last one has as many elements, in another order)."""
    if a.shape[1:] != b.shape[1:]:
        raise InputValueError(
            f"the samples' event shapes differ: {tuple(a.shape[1:])} and {tuple(b.shape[1:])}; "
            f"bring them to one layout first"
        )


def gaussian_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to raw samples ``(N, *event)`` and ``(M, *event)``
    (each sample flattened to a vector)."""
    _same_events(a, b)
    return frechet_distance(_flat(a, "a"), _flat(b, "b"))


@torch.no_grad()
def digits_fd(
    samples: torch.Tensor,
    reference: torch.Tensor,
    classifier: DigitsClassifier,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> float:
    """Fréchet distance of ``samples`` to ``reference`` (both ``(N, 1, 8, 8)`` in ``data_range``)
    in the classifier's penultimate features: a digits analogue of FID."""
    classifier = classifier.eval()
    feats_a = classifier.features(_to_unit_range(samples.float(), data_range))
    feats_b = classifier.features(_to_unit_range(reference.float(), data_range))
    return frechet_distance(feats_a, feats_b)


class Confidence(NamedTuple):
    """``confident``: fraction of samples with max class probability >= the threshold;
    ``entropy``: mean predictive entropy in nats (``log 10 = 2.30`` at most)."""

    confident: float
    entropy: float


@torch.no_grad()
def classifier_confidence(
    samples: torch.Tensor,
    classifier: DigitsClassifier,
    *,
    threshold: float = 0.9,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> Confidence:
    """How confidently the classifier recognises ``samples`` ``(N, 1, 8, 8)`` in ``data_range``."""
    bad = ~torch.isfinite(samples.detach()).flatten(1).all(dim=1)
    if bool(bad.any()):
        raise InputValueError(
            f"samples hold non-finite values (NaN/Inf) in {int(bad.sum())} of {len(samples)} "
            f"samples (first: {bad.nonzero().flatten()[:5].tolist()})"
        )
    log_probs = classifier.eval()(_to_unit_range(samples.float(), data_range)).log_softmax(dim=1)
    confident = (log_probs.max(dim=1).values.exp() >= threshold).float().mean()
    entropy = -(log_probs.exp() * log_probs).sum(dim=1).mean()
    return Confidence(confident.item(), entropy.item())


def sliced_wasserstein(
    a: torch.Tensor,
    b: torch.Tensor,
    n_projections: int = 256,
    generator: GeneratorLike = 0,
) -> float:
    """Sliced 2-Wasserstein distance between the empirical distributions of ``a`` and ``b``.

        SW_2(a, b)^2 = E_theta W_2(theta . a, theta . b)^2,   theta uniform on the unit sphere,

    with the expectation over ``n_projections`` random directions and each 1-D ``W_2`` exact:
    the integral over levels ``u`` of the squared difference of the two quantile functions,
    which are constant between the merged levels ``i/N`` and ``j/M`` (``a`` and ``b`` need not
    have the same size). ``generator`` draws the directions: by default the same ones at every
    call (seed 0), so that distances computed apart are paired and the global RNG is untouched.
    """
    _same_events(a, b)
    a, b = _flat(a, "a"), _flat(b, "b")
    n_projections = positive_int(n_projections, "n_projections")
    gen = as_generator(generator)
    if isinstance(gen, list):
        raise InputTypeError("sliced_wasserstein takes one generator or seed, not a list of them")
    device = gen.device if gen is not None else torch.device("cpu")  # draws on the generator's
    theta = torch.randn(
        a.shape[1], n_projections, generator=gen, dtype=torch.float64, device=device
    )
    theta = (theta / theta.norm(dim=0)).to(a.device)
    rows_a, rows_b, widths = _quantile_cells(len(a), len(b), a.device)
    qa = (a @ theta).sort(dim=0).values[rows_a]
    qb = (b @ theta).sort(dim=0).values[rows_b]
    return ((qa - qb).square() * widths[:, None]).sum(0).mean().sqrt().item()


def _quantile_cells(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cells between the merged levels ``i/n`` and ``j/m``, on each of which the quantile
    functions of ``n`` and ``m`` equally weighted points are both constant: the rank each reads
    in its sorted set, and the cell's length (in integer units of ``1/(n m)``: exact)."""
    edges = torch.cat([torch.arange(n + 1) * m, torch.arange(m + 1) * n]).unique()  # sorted
    left = edges[:-1]
    widths = edges.diff().to(torch.float64) / (n * m)
    return (left // m).to(device), (left // n).to(device), widths.to(device)

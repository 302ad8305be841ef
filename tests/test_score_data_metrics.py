"""Data sets and sample-quality metrics."""

import sys

import numpy as np
import pytest
import scipy.linalg
import torch

from sdekit_score.evaluation import metrics
from sdekit_score.evaluation.data import TOY2D, MissingExtraError, digits, sample_toy2d, toy2d
from sdekit_score.evaluation.metrics import (
    DigitsClassifier,
    classifier_confidence,
    default_cache_dir,
    digits_classifier,
    digits_fd,
    frechet_distance,
    gaussian_frechet,
    held_out_accuracy,
    sliced_wasserstein,
    train_digits_classifier,
)


def test_digits_are_1797_images_in_the_requested_range_with_labels():
    images, labels = digits((0.0, 1.0)).tensors
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    assert digits().tensors[0].min() == -1.0


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sdekit\[data\]'"):
        digits()


@pytest.mark.parametrize("name", TOY2D)
def test_toy2d_is_reproducible_and_lies_in_about_the_unit_square(name):
    points, labels = toy2d(name, 4000, generator=0).tensors
    assert points.shape == (4000, 2) and labels.shape == (4000,)
    assert points.abs().max() < 1.3 and points.abs().max() > 0.8
    assert torch.equal(points, sample_toy2d(name, 4000, torch.Generator().manual_seed(0))[0])
    assert not torch.equal(points, sample_toy2d(name, 4000, 1)[0])


def test_unknown_toy_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        toy2d("spiral", 10)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_on_the_sample_moments():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 5, generator=gen) @ torch.randn(5, 5, generator=gen)
    b = 0.5 + torch.randn(300, 5, generator=gen) @ torch.randn(5, 5, generator=gen)
    a64, b64 = a.double().numpy(), b.double().numpy()
    cov_a, cov_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((a64.mean(0) - b64.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * cross)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_gaussian_frechet_approaches_the_population_value_for_two_gaussians():
    # N(m1, diag(s1^2)) vs N(m2, diag(s2^2)): FD = |m1 - m2|^2 + sum (s1 - s2)^2.
    gen = torch.Generator().manual_seed(0)
    m1, m2 = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, -1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.5, 1.0, 1.5])
    a = (m1 + s1 * torch.randn(200_000, 3, generator=gen)).reshape(-1, 1, 3)
    b = (m2 + s2 * torch.randn(200_000, 3, generator=gen)).reshape(-1, 1, 3)
    expected = ((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    assert gaussian_frechet(a, b) == pytest.approx(expected.item(), rel=0.02)


def test_frechet_distance_wants_features_not_images():
    with pytest.raises(ValueError, match="gaussian_frechet"):
        frechet_distance(torch.randn(10, 1, 8, 8), torch.randn(10, 1, 8, 8))


def test_sliced_wasserstein_detects_a_shift():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 2, generator=gen), torch.randn(1500, 2, generator=gen)
    same = sliced_wasserstein(a, b, generator=1)
    shifted = sliced_wasserstein(a, b + torch.tensor([0.6, 0.0]), generator=1)
    # A shift by v moves each projection by theta . v: SW_2 = |v| sqrt(E cos^2) = 0.6 / sqrt(2).
    assert same < 0.08
    assert shifted == pytest.approx(0.6 / 2**0.5, abs=0.08)


def test_sliced_wasserstein_is_exact_for_sets_of_different_sizes():
    # Read at max(N, M) midpoints, {0, 1} against {0, 1, 2} gave 0.577 and, reflected, 0.816.
    # Exact: the quantile functions differ by 1 on [1/3, 1/2) and [2/3, 1), W2² = 1/6 + 1/3.
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0], [2.0]])
    for sign in (1, -1):
        assert sliced_wasserstein(sign * x, sign * y, n_projections=1) == pytest.approx(0.5**0.5)
    # against the quantile functions on a fine grid of levels
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(70, 1, generator=gen), torch.randn(100, 1, generator=gen) + 0.3
    u = (np.arange(700_000) + 0.5) / 700_000
    qa, qb = (
        np.sort(a[:, 0].numpy())[(u * 70).astype(int)],
        np.sort(b[:, 0].numpy())[(u * 100).astype(int)],
    )
    assert sliced_wasserstein(a, b, n_projections=2) == pytest.approx(
        np.sqrt(np.mean((qa - qb) ** 2)), rel=1e-6
    )


def test_sliced_wasserstein_draws_the_same_directions_by_default_and_not_from_the_global_rng():
    a, b = torch.randn(300, 5), torch.randn(200, 5)
    torch.manual_seed(7)
    first = sliced_wasserstein(a, b)
    after = torch.rand(())
    torch.manual_seed(7)
    assert sliced_wasserstein(a, b) == first and torch.rand(()) == after
    assert sliced_wasserstein(a, b, generator=1) != first


def test_metrics_refuse_samples_of_different_event_shapes():
    # 64 elements either way, compared in another order: a number was returned
    for metric in (gaussian_frechet, sliced_wasserstein):
        with pytest.raises(ValueError, match=r"event shapes differ: \(64,\) and \(1, 8, 8\)"):
            metric(torch.randn(100, 64), torch.randn(100, 1, 8, 8))


def test_classifier_confidence_refuses_non_finite_samples():
    # NaN samples counted as "not confident" and the entropy became NaN
    samples = torch.rand(20, 1, 8, 8)
    samples[[3, 7]] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite values \(NaN/Inf\) in 2 of 20 .*\[3, 7\]"):
        classifier_confidence(samples, DigitsClassifier())


def test_metrics_refuse_non_finite_samples_and_no_projections():
    # n_projections=0 returned NaN; NaN samples failed inside eigh
    a, b = torch.randn(20, 2), torch.randn(20, 2)
    for n in (0, -3):
        with pytest.raises(ValueError, match="n_projections"):
            sliced_wasserstein(a, b, n_projections=n)
    a[3, 1] = float("nan")
    for metric in (sliced_wasserstein, gaussian_frechet):
        with pytest.raises(ValueError, match=r"a holds non-finite values \(NaN/Inf\) in 1 of"):
            metric(a, b)


def test_the_cache_is_sdekit_cache_dir_else_xdg_cache_home_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SDEKIT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "sdekit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "sdekit"
    monkeypatch.setenv("SDEKIT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_the_classifier_is_trained_once_per_user_and_again_for_a_new_version(tmp_path, monkeypatch):
    trained = []

    def fake_training(seed, *, progress):
        trained.append(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(len(trained))
            return DigitsClassifier().eval()

    monkeypatch.setattr(metrics, "train_digits_classifier", fake_training)
    monkeypatch.setenv("SDEKIT_CACHE_DIR", str(tmp_path))
    first, second = digits_classifier(), digits_classifier()
    assert trained == [0]
    for (name, p), q in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert [f.name for f in tmp_path.iterdir()] == ["digits_classifier_v2_seed0.pt"]
    monkeypatch.setattr(metrics, "_CLASSIFIER_VERSION", 3)
    digits_classifier()
    assert trained == [0, 0]
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "digits_classifier_v2_seed0.pt",
        "digits_classifier_v3_seed0.pt",
    ]


def test_the_classifier_training_shows_a_progress_bar(capsys):
    train_digits_classifier(epochs=1, progress=True)
    assert "digits classifier: 100%" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def classifier(cache_dir):
    return digits_classifier(cache_dir)


@pytest.mark.slow
def test_digits_classifier_reaches_98_percent_held_out_accuracy(classifier):
    assert held_out_accuracy(classifier) >= 0.98


@pytest.mark.slow
def test_digits_classifier_is_cached_and_reloaded_identically(classifier, cache_dir):
    assert len(list(cache_dir.glob("digits_classifier_*.pt"))) == 1
    reloaded = digits_classifier(cache_dir)
    for (name, p), q in zip(
        classifier.state_dict().items(), reloaded.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


@pytest.mark.slow
def test_digits_metrics_separate_real_digits_from_noise(classifier):
    images = digits((0.0, 1.0)).tensors[0]
    noise = torch.rand(800, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    real_fd = digits_fd(images[:900], images[900:], classifier, data_range=(0.0, 1.0))
    noise_fd = digits_fd(noise, images[900:], classifier, data_range=(0.0, 1.0))
    assert real_fd < 0.2 * noise_fd
    real = classifier_confidence(images, classifier, data_range=(0.0, 1.0))
    fake = classifier_confidence(noise, classifier, data_range=(0.0, 1.0))
    assert real.confident > 0.95 and fake.confident < 0.8
    assert real.entropy < fake.entropy

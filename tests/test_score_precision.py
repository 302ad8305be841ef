"""AutocastScore: bf16 autocast and channels-last evaluation of a score network, on CPU.

Tolerances are in units of bfloat16's unit roundoff ``U = 2⁻⁸`` (8 significant bits; half of
``torch.finfo(torch.bfloat16).eps``). Measured spread of the reference U-Net's relative RMS output
error under bf16 autocast, over 20 random initialisations and inputs: ``2.83 U`` mean, ``0.26 U``
standard deviation, ``2.31–3.21 U`` range (16x16 images, widths 16/32; at 32x32, widths
32/64/64 and two blocks a level: ``2.68 ± 0.21 U``). The bounds below are the mean ``± 6``
standard deviations, rounded outward: ``[1 U, 4.5 U]``. The lower bound is what shows that the
network did run in bfloat16: float32 evaluation gives 0.
"""

from __future__ import annotations

import copy

import pytest
import torch

import sdekit_score as ss
from sdekit.errors import InputTypeError, InputValueError
from sdekit_score.sampling.precision import AMP_DTYPES, AutocastScore
from sdekit_score.sampling.schedules import time_grid

U = 2.0**-8  # bfloat16's unit roundoff
BF16_ERROR = (1.0 * U, 4.5 * U)  # mean 2.83 U ± 6 sd (0.26 U), see the module docstring
# Channels-last reorders the convolutions' float32 sums: its error against a float64 evaluation
# is of the size of the contiguous float32 evaluation's own (1.0–1.3x, three seeds). An absolute
# 1e-5 held on one machine's kernels; on another the contiguous float32 error alone is 1.2e-5.
CHANNELS_LAST_ROUNDING = 4.0


def unet_model(seed: int = 0, channels: int = 3, width: int = 16) -> ss.ScoreModel:
    torch.manual_seed(seed)
    net = ss.UNet(channels=channels, base_width=width, width_mults=(1, 2)).eval()
    return ss.ScoreModel(net, ss.VPSDE(), output="noise", conditioning="999t")


def inputs(seed: int = 0, batch: int = 8, channels: int = 3, size: int = 16):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=gen)
    t = 0.01 + 0.99 * torch.rand(batch, generator=gen)
    return x, t


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def assert_float32_rounding(got: torch.Tensor, model, x: torch.Tensor, t: torch.Tensor) -> None:
    """``got`` is ``model(x, t)`` up to float32 rounding: its largest and RMS errors against a
    float64 evaluation are within ``CHANNELS_LAST_ROUNDING`` times those of the contiguous
    float32 evaluation."""
    with torch.no_grad():
        exact = copy.deepcopy(model).double()(x.double(), t.double())
        plain = model(x, t).double()
    for norm in (lambda e: e.abs().max(), lambda e: e.norm()):
        assert norm(got.double() - exact) <= CHANNELS_LAST_ROUNDING * norm(plain - exact)


class Recorder:
    """Forward hooks on every convolution: the dtypes of their outputs and whether their inputs
    were channels-last."""

    def __init__(self, module: torch.nn.Module):
        self.dtypes: set[torch.dtype] = set()
        self.channels_last: list[bool] = []
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_hook(self.hook)

    def hook(self, module, args, out):
        self.dtypes.add(out.dtype)
        # (for inputs of more than one channel and pixel, not also an NCHW-contiguous layout)
        self.channels_last.append(args[0].is_contiguous(memory_format=torch.channels_last))


# --------------------------------------------------------------------------- bf16 autocast


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bf16_score_is_float32_within_the_measured_rounding_error(seed):
    model = unet_model(seed)
    x, t = inputs(seed)
    with torch.no_grad():
        exact = model(x, t)
        recorder = Recorder(model)
        got = AutocastScore(model, "bf16")(x, t)
    assert recorder.dtypes == {torch.bfloat16}  # the convolutions ran in bf16 ...
    assert got.dtype == x.dtype == torch.float32 and got.shape == x.shape  # ... the score did not
    assert got.is_contiguous()
    assert BF16_ERROR[0] < rel_rms(got, exact) < BF16_ERROR[1]


def test_amp_none_is_the_network_itself_and_float64_stays_float64():
    model = unet_model()
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(AutocastScore(model, "none")(x, t), model(x, t))
        assert torch.equal(AutocastScore(model, None)(x, t), model(x, t))
        model64 = copy.deepcopy(model).double()
        # autocast leaves float64 alone: the score is the float64 network's, in float64
        got = AutocastScore(model64, "bf16")(x.double(), t.double())
        assert got.dtype == torch.float64
        assert torch.equal(got, model64(x.double(), t.double()))


def test_the_score_is_returned_in_the_dtype_of_x_even_when_the_network_returns_bf16():
    def score_fn(x, t):  # a network that returns its own low-precision output
        return (-x).to(torch.bfloat16)

    x, t = inputs()
    got = AutocastScore(score_fn, "bf16")(x, t)
    assert got.dtype == torch.float32
    assert rel_rms(got, -x) < U


def test_gradients_flow_through_the_autocast_score_to_float32_parameters():
    model = unet_model(width=8)
    x, t = inputs(batch=2)
    AutocastScore(model, "bf16")(x, t).square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)


# --------------------------------------------------------------------------- channels-last


def test_channels_last_gives_the_contiguous_numbers_and_converts_the_parameters():
    model = unet_model()
    x, t = inputs()
    with torch.no_grad():
        converted = copy.deepcopy(model)
        wrapped = AutocastScore(converted, "none", channels_last=True)
        recorder = Recorder(converted)
        got = wrapped(x, t)
    weights = [p for p in converted.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert sum(not p.is_contiguous() for p in weights) > len(weights) // 2  # truly converted
    assert recorder.channels_last and all(recorder.channels_last)  # every conv saw NHWC input
    assert got.dtype == x.dtype and got.shape == x.shape and got.is_contiguous()
    assert_float32_rounding(got, model, x, t)


def test_channels_last_input_gets_a_channels_last_score_back():
    model = unet_model()
    x, t = inputs()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = AutocastScore(copy.deepcopy(model), "none", channels_last=True)(x_cl, t)
    assert not got.is_contiguous() and got.is_contiguous(memory_format=torch.channels_last)
    assert_float32_rounding(got, model, x, t)


def test_bf16_and_channels_last_together_stay_within_the_bf16_error():
    model = unet_model(1)
    x, t = inputs(1)
    with torch.no_grad():
        exact = model(x, t)
        got = AutocastScore(copy.deepcopy(model), "bf16", channels_last=True)(x, t)
    assert got.dtype == torch.float32 and got.is_contiguous()
    assert BF16_ERROR[0] < rel_rms(got, exact) < BF16_ERROR[1]


def test_a_bound_method_registers_its_module_and_channels_last_converts_it():
    model = unet_model(width=8)
    wrapped = AutocastScore(model.forward, "bf16", channels_last=True)
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in model.parameters()}
    assert model.net.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.net.conv_in.weight.is_contiguous()


# --------------------------------------------------------------------------- bad arguments


def test_bad_arguments_are_clear_errors():
    model = unet_model(width=8)
    with pytest.raises(InputTypeError, match="score_fn must be callable"):
        AutocastScore(torch.zeros(3), "bf16")
    with pytest.raises(InputValueError, match="amp='fp8': choose one of 'bf16', 'fp16', 'none'"):
        AutocastScore(model, "fp8")
    with pytest.raises(InputTypeError, match="amp must be one of"):
        AutocastScore(model, torch.bfloat16)
    with pytest.raises(InputTypeError, match="channels_last must be True or False"):
        AutocastScore(model, "bf16", channels_last="yes")
    with pytest.raises(InputValueError, match="no autocast for device type 'meta'"):
        AutocastScore(model, "bf16", device="meta")
    assert set(AMP_DTYPES) == {"bf16", "fp16", "none"}


def test_fp16_on_cpu_is_refused_at_construction_or_at_the_first_cpu_evaluation():
    with pytest.raises(InputValueError, match="amp='fp16' on CPU: use amp='bf16'"):
        AutocastScore(unet_model(width=8), "fp16")  # its parameters are on the CPU
    wrapped = AutocastScore(lambda x, t: -x, "fp16")  # no parameters: checked at the first call
    with pytest.raises(InputValueError, match="amp='fp16' on CPU"):
        wrapped(*inputs())


def test_channels_last_needs_images():
    mlp = ss.ScoreModel(ss.MLP(dim=2, hidden=16), ss.VPSDE())
    wrapped = AutocastScore(mlp, "bf16", channels_last=True)
    with pytest.raises(InputValueError, match=r"channels_last=True needs images .* \(4, 2\)"):
        ss.sample(wrapped, ss.VPSDE(), (4, 2), sampler="em", steps=2)


# --------------------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def ring_model():
    """A small MLP trained for 400 steps on the 2-D ring (about 2 s on one thread)."""
    config = ss.TrainConfig(
        net="mlp",
        net_kwargs=dict(dim=2, hidden=64),
        steps=400,
        batch_size=128,
        lr=2e-3,
        ema_decay=0.9,
        amp="none",
    )
    return ss.train(config, ss.toy2d("ring", 4096, generator=0), progress=False).score_fn


@pytest.mark.parametrize(
    "sampler, options, bound",
    [("em", dict(steps=100), 0.25), ("dpmpp_2m", dict(steps=20), 0.25)],
)
def test_bf16_samples_of_a_trained_model_match_float32_within_a_fraction_of_the_noise(
    ring_model, sampler, options, bound
):
    # Same noise for bf16 and float32: their distance is what rounding moved the samples;
    # two float32 draws of different noise give the Monte-Carlo noise of the comparison.
    # Measured: 0.0006 (em) and 0.0023 (dpmpp_2m) against 0.03-0.035, ratios 0.02 and 0.08.
    process = ring_model.process
    shape = (2048, 2)
    run = dict(sampler=sampler, **options)
    ref, _ = ss.sample(ring_model, process, shape, generator=0, **run)
    states = []

    def record(info):
        states.append(info["x"].dtype)

    wrapped = AutocastScore(ring_model, "bf16")
    low, stats = ss.sample(wrapped, process, shape, generator=0, callback=record, **run)
    other, _ = ss.sample(ring_model, process, shape, generator=1, **run)
    assert low.dtype == torch.float32 and set(states) == {torch.float32}
    assert bool(torch.isfinite(low).all())
    assert 0 < rel_rms(low, ref)  # bf16 did change the samples
    noise = ss.sliced_wasserstein(ref, other, generator=0)
    assert ss.sliced_wasserstein(low, ref, generator=0) < bound * noise


def test_bf16_channels_last_unet_sampling_keeps_a_float32_contiguous_state():
    model = unet_model(0, channels=1, width=8)
    shape = (16, 1, 8, 8)
    ref, _ = ss.sample(model, model.process, shape, sampler="dpmpp_2m", steps=8, generator=0)
    converted = copy.deepcopy(model)
    recorder = Recorder(converted)
    states = []

    def record(info):
        states.append((info["x"].dtype, info["x"].is_contiguous()))

    wrapped = AutocastScore(converted, "bf16", channels_last=True)
    got, stats = ss.sample(
        wrapped, model.process, shape, sampler="dpmpp_2m", steps=8, generator=0, callback=record
    )
    assert recorder.dtypes == {torch.bfloat16} and all(recorder.channels_last)
    assert set(states) == {(torch.float32, True)} and len(states) == 8
    assert got.dtype == torch.float32 and bool(torch.isfinite(got).all())
    assert int(stats["nfe"][0]) == 9
    # 8 steps of a random network: the rounding of its 9 evaluations, not amplified beyond a few
    # times the per-evaluation error (measured 0.5 U for this noise-predicting network).
    assert rel_rms(got, ref) < BF16_ERROR[1]


def test_sample_takes_amp_and_channels_last_as_the_wrapper_does():
    model = unet_model(0, channels=1, width=8)
    shape = (4, 1, 8, 8)
    options = dict(sampler="dpmpp_2m", steps=4, generator=0)
    wrapped = AutocastScore(copy.deepcopy(model), "bf16", channels_last=True)
    want, _ = ss.sample(wrapped, model.process, shape, **options)
    converted = copy.deepcopy(model)
    got, _ = ss.sample(converted, model.process, shape, amp="bf16", channels_last=True, **options)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert next(converted.parameters()).dtype == torch.float32  # autocast, not a cast
    plain, _ = ss.sample(model, model.process, shape, amp="none", **options)
    torch.testing.assert_close(
        plain, ss.sample(model, model.process, shape, **options)[0], rtol=0, atol=0
    )
    with pytest.raises(InputValueError, match="amp"):
        ss.sample(model, model.process, shape, amp="int8", **options)


S, D = 0.5, 8  # data N(0, S² I) in D dimensions


class GaussianScore(torch.nn.Module):
    """The exact VP score of N(0, S² I), ``-Qᵀ(Q x)/(α² S² + σ²)``, through two matrix products
    (an orthogonal ``Q`` and its transpose) that autocast runs in bf16."""

    def __init__(self, process):
        super().__init__()
        self.process = process
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=gen))
        self.a = torch.nn.Linear(D, D, bias=False)
        self.b = torch.nn.Linear(D, D, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(q)
            self.b.weight.copy_(q.T)

    def forward(self, x, t):
        var = self.process.alpha(t) ** 2 * S**2 + self.process.sigma(t) ** 2
        return -self.b(self.a(x)) / var[:, None]


def em_variance(process, steps: int) -> float:
    """The exact variance of Euler–Maruyama's samples (no denoising) under the exact score: the
    reverse step is linear, ``x ← a x + √(β h) z``, so ``v ← a² v + β h``."""
    grid = time_grid(process, steps, "linear").double()
    v = torch.tensor(process.prior_std**2, dtype=torch.float64)
    for t, t_next in zip(grid[:-1], grid[1:], strict=True):
        h = t - t_next
        beta = process.diffusion(t) ** 2
        var = process.alpha(t) ** 2 * S**2 + process.sigma(t) ** 2
        a = 1 - h * (process.drift_coefficient(t) + beta / var)
        v = a * a * v + beta * h
    return float(v)


def test_bf16_moves_the_law_far_less_than_the_discretisation_on_an_exact_gaussian_score():
    process = ss.VPSDE()
    eps = torch.tensor(process.eps, dtype=torch.float64)
    true = float(process.alpha(eps) ** 2 * S**2 + process.sigma(eps) ** 2)
    bias = em_variance(process, 100) / true - 1  # 1.53%: the scheme's own error, exact
    assert 0.01 < bias < 0.02
    score = GaussianScore(process)
    run = dict(sampler="em", steps=100, generator=3, denoise=False)
    ref, _ = ss.sample(score, process, (4096, D), **run)
    low, _ = ss.sample(AutocastScore(score, "bf16"), process, (4096, D), **run)
    change = float(low.double().var() / ref.double().var() - 1)  # paired: the same noise
    # measured +0.09% on every seed, a seventeenth of the bias (module docstring of precision)
    assert 0 < abs(change) < 0.25 * bias


def test_a_bfloat16_state_would_be_far_worse_than_the_discretisation():
    # Why the state stays float32 (sample() and solve() refuse a 16-bit one): Euler–Maruyama's
    # step under the exact score, x <- a x + sqrt(beta h) z as in em_variance, with x in bfloat16.
    process = ss.VPSDE()
    eps = torch.tensor(process.eps, dtype=torch.float64)
    true = float(process.alpha(eps) ** 2 * S**2 + process.sigma(eps) ** 2)
    bias = em_variance(process, 1000) / true - 1  # 0.14%
    gen = torch.Generator().manual_seed(3)
    x = (process.prior_std * torch.randn(8192, D, generator=gen)).bfloat16()
    grid = time_grid(process, 1000, "linear").double()
    for t, t_next in zip(grid[:-1], grid[1:], strict=True):
        h, beta = t - t_next, process.diffusion(t) ** 2
        var = process.alpha(t) ** 2 * S**2 + process.sigma(t) ** 2
        a = 1 - h * (process.drift_coefficient(t) + beta / var)
        z = torch.randn(x.shape, generator=gen)
        x = x * a.item() + (beta * h).sqrt().item() * z.bfloat16()
    error = float(x.double().var()) / true - 1  # measured 3.2% (Monte-Carlo sd 0.55%)
    assert abs(error) > 5 * abs(bias)
    with pytest.raises(InputValueError, match=r"dtype=torch.bfloat16: a 16-bit state"):
        ss.sample(GaussianScore(process), process, (4, D), sampler="em", dtype=torch.bfloat16)


@pytest.mark.parametrize("sampler", ["em", "adaptive"])
def test_a_bfloat16_network_samples_in_float32(sampler):
    # The network runs in bfloat16 (its weights), the state in float32: adaptive sampling with
    # the whole solve in bfloat16 gave variance 0.90 instead of 0.25 on such a Gaussian.
    process = ss.VPSDE()
    score = GaussianScore(process)
    run = dict(sampler=sampler, generator=3, denoise=False)
    ref, _ = ss.sample(score, process, (4096, D), **run)
    low_net = ss.ScoreModel(GaussianScore(process).to(torch.bfloat16), process, output="score")
    low, _ = ss.sample(low_net, process, (4096, D), **run)
    assert low.dtype == torch.float32
    change = float(low.double().var() / ref.double().var() - 1)
    # bfloat16 rounds the network's output to 2^-8 relative, so the variance may move by up to
    # about twice that (measured 0.3-0.5% over seeds 3-6; the solve in bfloat16 moved it 260%)
    assert abs(change) < 2 * 2**-8
    with pytest.raises(InputValueError, match=r"wrap the network in ScoreModel"):
        ss.sample(GaussianScore(process).to(torch.bfloat16), process, (4, D), **run)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_packages_own_networks_sample_in_16_bit(dtype):
    # their time embeddings returned float32 features into 16-bit layers: every sampler failed,
    # and the message asked to wrap the network in ScoreModel, which it was
    process = ss.VPSDE()
    for net, shape in [
        (ss.MLP(dim=2, hidden=16, depth=2), (4, 2)),
        (ss.UNet(channels=1, base_width=8, width_mults=(1, 2)), (2, 1, 8, 8)),
    ]:
        model = ss.ScoreModel(net.to(dtype), process, conditioning="999t")
        x, _ = ss.sample(model, process, shape, sampler="unipc", steps=3, generator=0)
        assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())


def test_a_16_bit_network_that_mixes_dtypes_inside_is_told_what_to_cast():
    class FloatTimeInput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.time = torch.nn.Linear(1, 2)

        def forward(self, x, c):
            return x * self.time(c[:, None])  # c arrives in float32

    process = ss.VPSDE()
    model = ss.ScoreModel(FloatTimeInput().to(torch.bfloat16), process)
    with pytest.raises(InputValueError, match=r"ScoreModel gave it x in torch.bfloat16.*cast"):
        ss.sample(model, process, (3, 2), sampler="em", steps=3, generator=0)


def test_score_model_refuses_an_output_that_is_not_a_tensor():
    process = ss.VPSDE()
    model = ss.ScoreModel(lambda x, c: (x, c), process)
    with pytest.raises(InputTypeError, match=r"net returned tuple, not a tensor.*from_diffusers"):
        ss.sample(model, process, (3, 2), sampler="em", steps=3, generator=0)

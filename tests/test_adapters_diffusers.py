"""``from_diffusers``: exact schedules at the scheduler's timesteps, the score conversions of each
prediction type, sampling a small random ``UNet2DModel``, and ``save_pretrained`` directories."""

import copy
import json
import subprocess
import sys

import pytest
import torch

import sdekit_score as ss
from sdekit_score.adapters import (
    DiscreteVPProcess,
    MissingExtraError,
    from_diffusers,
    is_diffusers_directory,
    load_pretrained,
)
from sdekit_score.cli import main

diffusers = pytest.importorskip("diffusers")

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = ("epsilon", "v_prediction", "sample")


def unet(seed=0, **config):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        **config,
    ).eval()


@pytest.fixture(scope="module")
def model():
    return unet()


# --------------------------------------------------------------------------- the process


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_alpha_and_sigma_at_every_timestep_are_the_schedulers(schedule):
    scheduler = diffusers.DDPMScheduler(beta_schedule=schedule)
    _, process = from_diffusers(unet, scheduler)
    abar = scheduler.alphas_cumprod.double()
    t = process.timestep_to_t(torch.arange(1000, dtype=torch.float64))
    torch.testing.assert_close(process.alpha(t) ** 2, abar, rtol=1e-12, atol=0)
    torch.testing.assert_close(process.sigma(t) ** 2, 1 - abar, rtol=1e-12, atol=0)
    # float32 time: a timestep's time rounded to float32 is that timestep (1.3e-8 above it at
    # n = 998 read the interval above: alpha 4.4e-5 off on the cosine schedule); to the float32
    # rounding of log abar (down to -10)
    t32 = t.float()
    assert process.alpha(t32).dtype == torch.float32
    torch.testing.assert_close(process.alpha(t32), abar.sqrt().float(), rtol=1e-6, atol=0)
    torch.testing.assert_close(process.beta(t32), process.beta(t).float(), rtol=2e-7, atol=0)


def test_the_inference_timesteps_of_ddim_and_its_final_step_are_on_the_process():
    scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear")
    scheduler.set_timesteps(20)
    _, process = from_diffusers(unet, scheduler)
    t = process.timestep_to_t(scheduler.timesteps.double())
    abar = scheduler.alphas_cumprod[scheduler.timesteps].double()
    torch.testing.assert_close(process.alpha(t) ** 2, abar, rtol=1e-12, atol=0)
    # DDIM's last step goes to final_alpha_cumprod = 1: timestep -1, time 0, clean data.
    assert float(scheduler.final_alpha_cumprod) == 1.0
    assert float(process.alpha(process.timestep_to_t(torch.tensor(-1.0)))) == 1.0


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_time_conversions_round_trip(schedule):
    _, process = from_diffusers(unet, diffusers.DDPMScheduler(beta_schedule=schedule))
    t = torch.rand(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = process.eps + (process.T - process.eps) * t
    torch.testing.assert_close(process.timestep_to_t(process.t_to_timestep(t)), t)
    torch.testing.assert_close(process.sigma_to_t(process.sigma(t)), t, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        process.noise_level_to_t(process.noise_level(t)), t, rtol=1e-9, atol=1e-12
    )
    assert process.t_to_timestep(torch.tensor(1.0)) == 999 and process.eps == 1e-3


def test_the_rate_is_piecewise_constant_and_gives_ddpms_forward_step_over_each_interval():
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    process = DiscreteVPProcess(scheduler.alphas_cumprod)
    abar = scheduler.alphas_cumprod.double()
    n = torch.arange(1000, dtype=torch.float64)
    inside = (n + 0.5) / 1000  # inside (t_{n-1}, t_n] = (n/N, (n+1)/N]: DDPM's step n
    rate = process.beta(inside)
    # exp(-∫β over the interval) = abar_n / abar_{n-1} (= 1 - beta_n up to float32 products)
    ratio = abar / torch.cat([abar.new_ones(1), abar[:-1]])
    torch.testing.assert_close(torch.exp(-rate / 1000), ratio, rtol=1e-12, atol=0)
    torch.testing.assert_close(ratio, 1 - scheduler.betas.double(), rtol=1e-4, atol=0)
    assert torch.equal(process.beta(process.timestep_to_t(n)), rate)  # right ends: same rate
    # the moment equations d alpha/dt = f alpha, d sigma²/dt = 2 f sigma² + g² inside intervals
    t, h = inside.double(), 1e-7
    f, g2 = process.drift_coefficient(t), process.diffusion(t) ** 2
    d_alpha = (process.alpha(t + h) - process.alpha(t - h)) / (2 * h)
    d_var = (process.sigma(t + h) ** 2 - process.sigma(t - h) ** 2) / (2 * h)
    torch.testing.assert_close(d_alpha, f * process.alpha(t), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(d_var, 2 * f * process.sigma(t) ** 2 + g2, rtol=1e-6, atol=1e-9)


def test_the_jumps_of_g_are_at_the_knots():
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    process = DiscreteVPProcess(scheduler.alphas_cumprod)
    times, jumps = process.diffusion_jumps()
    g = process.diffusion
    assert times.dtype == torch.float64 and len(times) == 998  # knots 2/N .. 999/N
    torch.testing.assert_close(times, torch.arange(2, 1000, dtype=torch.float64) / 1000)
    torch.testing.assert_close(jumps, g(times + 1e-6) - g(times - 1e-6), rtol=1e-12, atol=0)
    assert float(jumps[-1]) > 45  # the clipped last beta: g from 37 to 83
    assert all(len(v) == 0 for v in ss.VPSDE().diffusion_jumps())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gotta_go_fast_crosses_the_last_knot_of_a_cosine_schedule(dtype):
    # g jumps from 37 to 83 at t = 0.999 (the clipped beta); improved Euler's estimate holds
    # (g(t + h) - g(t)) ΔW / 2, which the 6e-8 resolution of a float32 time near 1 could not
    # make small: "step size fell below dt_min" for some sample of every float32 batch.
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    process = DiscreteVPProcess(scheduler.alphas_cumprod)

    def score(x, t):  # data N(0, 0.5² I)
        alpha, sigma = process.alpha(t)[:, None], process.sigma(t)[:, None]
        return -x / (0.25 * alpha**2 + sigma**2)

    n = 4096
    x, _ = ss.sample(score, process, (n, 2), sampler="ggf", generator=0, dtype=dtype)
    # variance 0.25 within 4 standard errors (of a variance from 2n normal draws)
    assert abs(float(x.pow(2).mean()) - 0.25) < 4 * 0.25 * (2 / (2 * n)) ** 0.5


def test_a_schedule_that_does_not_decrease_or_reaches_zero_is_refused():
    with pytest.raises(ValueError, match="decrease strictly"):
        DiscreteVPProcess(torch.tensor([0.9, 0.9, 0.5]))
    with pytest.raises(ValueError, match="a zero only as the last one"):
        DiscreteVPProcess(torch.tensor([0.9, 0.0, 0.0]))


@pytest.mark.parametrize("scheduler", ["DDPMScheduler", "DDIMScheduler", "EulerDiscreteScheduler"])
def test_a_zero_terminal_snr_schedule_samples(scheduler):
    # rescale_betas_zero_snr=True ends at alphas_cumprod 0: it was refused, and clipping it to
    # 2**-24 as the message said was refused too (the value before is 4e-9)
    scheduler = getattr(diffusers, scheduler)(
        rescale_betas_zero_snr=True, prediction_type="v_prediction"
    )
    abar = scheduler.alphas_cumprod.double().clone()
    abar[-1] = 0.0
    score_fn, process = from_diffusers(ExactGaussian(abar, "v_prediction"), scheduler)
    assert 0 < float(process.alpha(torch.tensor(1.0)) ** 2) <= 2**-24
    at_timesteps = process.timestep_to_t(torch.arange(999, dtype=torch.float64))
    torch.testing.assert_close(process.alpha(at_timesteps) ** 2, abar[:-1], rtol=1e-9, atol=0)
    x, _ = ss.sample(score_fn, process, (4000, 1, 1, 1), sampler="unipc", steps=30, generator=0,
                     dtype=torch.float64)  # fmt: skip
    assert abs(float(x.var()) - 0.25) < 5 * 0.25 * (2 / 4000) ** 0.5


def test_the_schedule_reaches_a_device_once_not_at_every_call(monkeypatch):
    # Every alpha/sigma/beta call reads the knots; a copy per call is a host-to-device copy (and
    # a stream synchronisation) per call on a GPU.
    process = DiscreteVPProcess(torch.linspace(0.99, 0.01, 50))
    copies = []
    to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda x, *a, **k: copies.append(a) or to(x, *a, **k))
    t = torch.rand(8, dtype=torch.float64)
    for _ in range(3):
        process.alpha(t), process.sigma(t), process.beta(t), process.noise_level(t)
    assert sum(1 for a in copies if a and isinstance(a[0], torch.device)) == 1


# --------------------------------------------------------------------------- the score


def reference_score(out, x, abar, prediction):
    """The conversion written out from diffusers' definitions, with abar from the scheduler."""
    a, s = abar.sqrt().view(-1, 1, 1, 1), (1 - abar).sqrt().view(-1, 1, 1, 1)
    if prediction == "epsilon":  # out = eps
        eps = out
    elif prediction == "v_prediction":  # out = v = a eps - s x0, x = a x0 + s eps
        eps = a * out + s * x
    else:  # out = x0
        eps = (x - a * out) / s
    return -eps / s


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_score_is_the_conversion_of_the_model_output(model, schedule, prediction):
    scheduler = diffusers.DDPMScheduler(beta_schedule=schedule, prediction_type=prediction)
    score_fn, process = from_diffusers(model, scheduler)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 8, 8, generator=gen)
    n = torch.randint(0, 1000, (6,), generator=gen)
    with torch.no_grad():
        # at the scheduler's timesteps, against its own alphas_cumprod
        out = model(x, n).sample
        expected = reference_score(out, x, scheduler.alphas_cumprod[n], prediction)
        torch.testing.assert_close(score_fn(x, process.timestep_to_t(n.float())), expected)
        # between timesteps: the model at the fractional timestep N t - 1
        t = torch.rand(6, generator=gen) * (1 - process.eps) + process.eps
        out = model(x, 1000 * t - 1).sample
        abar = process.alpha(t) ** 2
        torch.testing.assert_close(score_fn(x, t), reference_score(out, x, abar, prediction))


class ExactGaussian(torch.nn.Module):
    """The exact prediction of each type for data x0 ~ N(0, s² I), under a DDPM schedule."""

    def __init__(self, abar, prediction, s=0.5):
        super().__init__()
        self.abar, self.prediction, self.s = abar.double(), prediction, s

    def forward(self, x, timesteps):
        abar = torch.as_tensor(self.abar).new_tensor(0) + _interp(self.abar, timesteps)
        a, sig = abar.sqrt().view(-1, 1, 1, 1), (1 - abar).sqrt().view(-1, 1, 1, 1)
        total = a**2 * self.s**2 + sig**2
        x0 = a * self.s**2 * x / total  # E[x0 | x]
        eps = sig * x / total  # E[eps | x]
        out = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - sig * x0}[self.prediction]
        return (out,)


def _interp(abar, n):
    """alphas_cumprod at fractional timesteps, log-linear as the process (exact at integers)."""
    log = torch.cat([abar.new_zeros(1), abar.log()])
    u = n.double() + 1
    k = u.floor().clamp(0, len(abar) - 1).long()
    return torch.exp((1 - (u - k)) * log[k] + (u - k) * log[k + 1])


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_three_prediction_types_of_an_exact_model_give_the_same_true_score(schedule):
    x = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.tensor([0.001, 0.3, 0.77, 1.0], dtype=torch.float64)
    for prediction in PREDICTIONS:
        scheduler = diffusers.DDPMScheduler(beta_schedule=schedule, prediction_type=prediction)
        score_fn, process = from_diffusers(
            ExactGaussian(scheduler.alphas_cumprod, prediction), scheduler
        )
        var = (process.alpha(t) ** 2 * 0.25 + process.sigma(t) ** 2).view(-1, 1, 1, 1)
        torch.testing.assert_close(score_fn(x, t), -x / var, rtol=1e-10, atol=1e-10)


def test_continuous_timesteps_of_euler_v_prediction_are_a_quarter_of_log_sigma():
    # EulerDiscreteScheduler(timestep_type="continuous") conditions v-prediction models on
    # 0.25 log(sigma); the model was called with N t - 1 (mean 0.46, variance 1.00 for 0.3, 0.25)
    scheduler = diffusers.EulerDiscreteScheduler(
        timestep_type="continuous", prediction_type="v_prediction"
    )
    scheduler.set_timesteps(10)
    seen = []

    def model(x, timesteps):
        seen.append(timesteps)
        return torch.zeros_like(x)

    score_fn, process = from_diffusers(model, scheduler)
    sigmas = scheduler.sigmas[:-1].double()
    t = process.noise_level_to_t(sigmas)
    score_fn(torch.zeros(10, 1, 2, 2, dtype=torch.float64), t)
    torch.testing.assert_close(seen[0], scheduler.timesteps.double(), rtol=1e-5, atol=1e-5)
    # the discrete convention stays for the other prediction types, as in diffusers
    eps = diffusers.EulerDiscreteScheduler(timestep_type="continuous")
    assert from_diffusers(model, eps)[0].timesteps == "discrete"


def test_score_sde_ve_maps_to_the_ve_process_and_calls_the_model_with_sigma():
    scheduler = diffusers.ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=50.0, sampling_eps=1e-5)
    scheduler.set_sigmas(100)
    model = unet(time_embedding_type="fourier")
    score_fn, process = from_diffusers(model, scheduler)
    assert isinstance(process, ss.VESDE) and (process.sigma_min, process.sigma_max) == (0.01, 50.0)
    assert process.eps == 1e-5 and process.data_range == (0.0, 1.0)
    sigmas = process.sigma(scheduler.timesteps.double())
    torch.testing.assert_close(sigmas, scheduler.sigmas.double(), rtol=1e-6, atol=0)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():
        torch.testing.assert_close(score_fn(x, t), model(x, process.sigma(t)).sample)


def test_unsupported_schedulers_and_prediction_types_are_named():
    with pytest.raises(TypeError, match="ScoreSdeVeScheduler"):
        from_diffusers(unet, diffusers.EDMEulerScheduler())
    with pytest.raises(ValueError, match="prediction_type"):
        from_diffusers(unet, diffusers.DDPMScheduler(prediction_type="flow"))


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "sampler, options",
    [
        ("em", {"steps": 8}),
        ("ggf", {"eps_rel": 0.1}),
        ("ode", {"rtol": 1e-2, "atol": 1e-2}),
        ("cas", {"n_levels": 8}),
    ],
)
def test_sampling_a_small_unet_runs_end_to_end(model, sampler, options):
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    score_fn, process = from_diffusers(model, scheduler)
    if sampler == "cas":  # eta = step_lr / sigma_L² = 1 suits any ladder
        options["step_lr"] = process.noise_level_range()[0] ** 2
    x, stats = ss.sample(score_fn, process, (3, 1, 8, 8), sampler=sampler, generator=0, **options)
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and not x.requires_grad
    assert stats["nfe"].shape == (3,) and (stats["nfe"] > 1).all()


def test_a_learned_time_embedding_is_called_at_the_nearest_training_timestep():
    # nn.Embedding of the timesteps: fractional timesteps failed with "float indices"
    model = unet(time_embedding_type="learned", num_train_timesteps=50)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=50)
    score_fn, process = from_diffusers(model, scheduler)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    x, _ = ss.sample(score_fn, process, (2, 1, 8, 8), sampler="unipc", steps=7, generator=0)
    assert torch.isfinite(x).all() and all(t.dtype == torch.long for t in seen)
    n = torch.cat(seen)
    assert n.min() >= 0 and n.max() <= 49 and n.max() == 49  # T = 1 is timestep N - 1
    seen.clear()
    for t in (0.5, 0.505, 0.515):  # timesteps 24, 24.25 and 24.75
        score_fn(x[:1], torch.tensor([t]))
    assert [int(n) for n in seen] == [24, 24, 25]


def test_a_learned_variance_model_is_scored_from_the_first_half_of_its_channels():
    scheduler = diffusers.DDPMScheduler(variance_type="learned_range")
    exact = ExactGaussian(scheduler.alphas_cumprod, "epsilon")

    def model(x, timesteps):  # improved DDPM: the prediction, then a variance per channel
        prediction = exact(x, timesteps)[0]
        return torch.cat([prediction, torch.full_like(prediction, 7.0)], dim=1)

    score_fn, _ = from_diffusers(model, scheduler)
    reference, _ = from_diffusers(exact, diffusers.DDPMScheduler())
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    torch.testing.assert_close(score_fn(x, t), reference(x, t))
    # without variance_type the doubled output is named
    with pytest.raises(ValueError, match=r"twice x's channels: a learned-variance model"):
        from_diffusers(model, diffusers.DDPMScheduler())[0](x, t)


def test_finished_samples_are_not_evaluated_below_the_first_timestep():
    # per-sample dpm_adaptive stepped finished samples' stages to timestep -0.74: outside what
    # the model was trained on (an embedding table indexed by timestep would fail)
    scheduler = diffusers.DDPMScheduler()
    seen = []
    exact = ExactGaussian(scheduler.alphas_cumprod, "epsilon")

    def model(x, timesteps):
        seen.append(float(timesteps.min()))
        return exact(x.double(), timesteps)[0].to(x.dtype)

    score_fn, process = from_diffusers(model, scheduler)
    ss.sample(score_fn, process, (6, 1, 2, 2), sampler="dpm_adaptive", generator=0)
    assert min(seen) > -1e-3


def test_a_bfloat16_unet_runs_in_bfloat16_on_float32_samples(model):
    # With the state in bfloat16 (the default before), the adaptive samplers' variance came out
    # 0.90 instead of 0.25 on a Gaussian, and timesteps 998 and 999 were one number.
    low = copy.deepcopy(model).to(torch.bfloat16)
    seen = []
    low.register_forward_pre_hook(lambda module, args: seen.append(args))
    score_fn, process = from_diffusers(low, diffusers.DDPMScheduler())
    x, _ = ss.sample(score_fn, process, (2, 1, 8, 8), sampler="em", steps=4, generator=0)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    first_x, first_timesteps = seen[0]
    assert first_x.dtype == torch.bfloat16 and first_timesteps.dtype == torch.float32
    assert first_timesteps.tolist() == [999.0, 999.0]


# --------------------------------------------------------------------------- save_pretrained


@pytest.mark.parametrize("layout", ["pipeline", "model+scheduler", "pickle-weights"])
def test_save_pretrained_directories_load_to_the_same_score(model, tmp_path, layout):
    scheduler = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear", prediction_type="v_prediction"
    )
    if layout == "pipeline":
        diffusers.DDPMPipeline(unet=model, scheduler=scheduler).save_pretrained(tmp_path)
    else:
        model.save_pretrained(tmp_path, safe_serialization=layout == "model+scheduler")
        scheduler.save_pretrained(tmp_path)
    assert is_diffusers_directory(tmp_path) and not is_diffusers_directory(tmp_path.parent)
    score_fn, process, shape = load_pretrained(tmp_path)
    assert shape == (1, 8, 8) and isinstance(process, DiscreteVPProcess)
    expected, _ = from_diffusers(model, scheduler)
    x, t = torch.randn(2, *shape), torch.tensor([0.1, 0.9])
    with torch.no_grad():
        torch.testing.assert_close(score_fn(x, t), expected(x, t))


class Payload:
    """Unpickling this runs code (print); torch.load(weights_only=True) must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_weights_with_arbitrary_objects_are_refused(model, tmp_path):
    model.save_pretrained(tmp_path, safe_serialization=False)
    diffusers.DDPMScheduler().save_pretrained(tmp_path)
    torch.save({"payload": Payload()}, tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_pretrained(tmp_path)


def test_a_model_without_its_scheduler_is_refused(model, tmp_path):
    model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="scheduler_config.json"):
        load_pretrained(tmp_path)


def test_without_the_extra_loading_is_a_one_line_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MissingExtraError) as err:
        load_pretrained(tmp_path)
    assert (
        str(err.value)
        == "loading a diffusers model needs diffusers: pip install 'sdekit[diffusers]'"
    )


def test_importing_the_adapters_does_not_import_diffusers():
    code = "import sys, sdekit_score.adapters, sdekit_score.cli; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_the_cli_samples_a_save_pretrained_directory(model, tmp_path, capsys):
    diffusers.DDPMPipeline(unet=model, scheduler=diffusers.DDPMScheduler()).save_pretrained(
        tmp_path / "pipe"
    )
    argv = ["sample", "--checkpoint", tmp_path / "pipe", "--sampler", "em", "--option", "steps=4"]
    argv += ["--n", "3", "--no-progress", "--out", tmp_path / "out"]
    assert main([str(a) for a in argv]) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["format"] == "diffusers" and stats["sampler"] == "em"
    samples = torch.load(tmp_path / "out" / "samples.pt", weights_only=True)
    assert samples.shape == (3, 1, 8, 8) and torch.isfinite(samples).all()
    capsys.readouterr()
    (tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    assert main([str(a) for a in argv]) == 2
    assert "no weights" in capsys.readouterr().err


WITHOUT_DIFFUSERS = """
import sys
sys.modules["diffusers"] = None
from sdekit_score.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_cli_without_the_extra_is_a_one_line_error_naming_it(model, tmp_path):
    diffusers.DDPMPipeline(unet=model, scheduler=diffusers.DDPMScheduler()).save_pretrained(
        tmp_path
    )
    argv = ["sample", "--checkpoint", str(tmp_path), "--sampler", "em", "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_DIFFUSERS, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "sdekit-score: error: loading a diffusers model needs diffusers: "
        "pip install 'sdekit[diffusers]'\n"
    )


class _IndexEmbedding(torch.nn.Module):
    """A plain module with a learned time embedding: it needs integer timesteps."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(1000, 1)
        self.seen = None

    def forward(self, x, timesteps):
        self.seen = timesteps
        return 0.1 * x * self.embed(timesteps)[:, :, None, None]


def test_a_plain_module_with_a_learned_time_embedding_is_told_and_served():
    # its config cannot say time_embedding_type="learned": torch's raw error was all it got
    module, scheduler = _IndexEmbedding(), diffusers.DDPMScheduler()
    score, process = from_diffusers(module, scheduler)
    with pytest.raises(RuntimeError) as info:
        ss.sample(score, process, (2, 1, 4, 4), sampler="em", steps=3, generator=0)
    if hasattr(info.value, "add_note"):
        assert "timesteps='integer'" in "\n".join(info.value.__notes__)
    score, process = from_diffusers(module, scheduler, timesteps="integer")
    x, _ = ss.sample(score, process, (2, 1, 4, 4), sampler="em", steps=3, generator=0)
    assert bool(torch.isfinite(x).all()) and module.seen.dtype == torch.long
    with pytest.raises(ValueError, match=r"timesteps='integer' is for schedulers with"):
        from_diffusers(module, diffusers.ScoreSdeVeScheduler(), timesteps="integer")
    with pytest.raises(ValueError, match=r"timesteps"):
        from_diffusers(module, scheduler, timesteps="index")

"""Losses and training: DSM and hybrid objectives, checkpoints and exact resumption."""

import dataclasses
import math
import os
import stat

import numpy as np
import pytest
import torch

from sdekit.errors import InputError
from sdekit_score.evaluation.data import digits, toy2d
from sdekit_score.sampling.processes import PROCESSES, VESDE, VPSDE, EDMProcess, make_process
from sdekit_score.sampling.scores import ScoreModel
from sdekit_score.training import trainer
from sdekit_score.training.losses import dsm_loss, hybrid_loss, sample_times
from sdekit_score.training.trainer import (
    TrainConfig,
    build_model,
    build_process,
    latest_checkpoint,
    load_checkpoint,
    register_net,
    train,
)

TINY_UNET = dict(base_width=8, width_mults=(1,), attention=False)


def _standard_normal_score(x, t):
    return -x


def test_dsm_loss_matches_its_formula_at_given_times():
    process = VPSDE()
    x0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.1, 0.9, 6)
    loss = dsm_loss(_standard_normal_score, process, x0, t=t, generator=7)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(7))
    alpha, sigma = process.alpha(t)[:, None], process.sigma(t)[:, None]
    x = alpha * x0 + sigma * z
    expected = 0.5 * (sigma * -x + z).pow(2).sum(1).mean()
    torch.testing.assert_close(loss, expected)


def test_likelihood_weighting_multiplies_by_g2_over_sigma2():
    process = VESDE()
    x0, t = torch.rand(1, 4), torch.tensor([0.3])
    plain = dsm_loss(_standard_normal_score, process, x0, t=t, generator=0)
    weighted = dsm_loss(
        _standard_normal_score, process, x0, t=t, generator=0, weighting="likelihood"
    )
    torch.testing.assert_close(
        weighted, plain * ((process.diffusion(t) / process.sigma(t)) ** 2).item()
    )


def test_dsm_loss_at_the_true_score_has_its_closed_form_value():
    # x0 ~ N(0, I) under VP keeps p_t = N(0, I): with s = -x the residual sigma s + z has
    # variance alpha^2 per dimension, so the loss is D alpha(t)^2 / 2; a wrong score does worse.
    process, t = VPSDE(), torch.tensor(0.2)
    x0 = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    loss = dsm_loss(_standard_normal_score, process, x0, t=t, generator=1)
    assert loss.item() == pytest.approx(process.alpha(t).item() ** 2, rel=0.01)
    worse = dsm_loss(lambda x, t: -0.8 * x, process, x0, t=t, generator=1)
    assert worse > loss


def test_levels_give_the_network_exactly_the_levels_as_sigma():
    process = VESDE()
    levels = torch.tensor([50.0, 5.0, 0.5, 0.05])
    seen = []

    def net(x, c):
        seen.append(c)
        return torch.zeros_like(x)

    model = ScoreModel(net, process, output="sigma_score", conditioning="sigma")
    dsm_loss(model, process, torch.rand(64, 3), levels=levels, generator=0)
    distance = (seen[0][:, None] - levels).abs().min(dim=1).values
    assert distance.max() < 1e-4 * seen[0].max()
    assert len(torch.unique(sample_times(process, 1000, levels=levels, generator=0))) == 4


def test_edm_trains_on_log_uniform_noise_levels_as_ve():
    # uniform σ on [0.002, 80] put 1.3% of the draws below σ = 1 (digits of detail untrained);
    # log-uniform: 5000 training steps of a 2-D MLP gave samples 4x closer to the data
    process, n = EDMProcess(), 20000
    sigma = process.sigma(sample_times(process, n, generator=0)).double()
    assert process.eps <= sigma.min() and sigma.max() <= process.T
    u = (sigma / process.eps).log() / math.log(process.T / process.eps)  # uniform on [0, 1]
    se = (1 / 12 / n) ** 0.5
    assert abs(u.mean().item() - 0.5) < 5 * se and abs(u.var().item() - 1 / 12) < 5 * se / 2
    ve = VESDE(sigma_min=process.eps, sigma_max=process.T)
    torch.testing.assert_close(
        ve.sigma(sample_times(ve, n, generator=0)).double(), sigma, rtol=1e-3, atol=0
    )


def test_edm_levels_are_spaced_in_log_noise_level_as_its_training_times():
    # evenly in σ, ten levels left nothing between 0.002 and 8.9
    process = EDMProcess()
    levels = trainer._levels(TrainConfig(process="edm", levels=10), process, torch.device("cpu"))
    ratios = levels[:-1] / levels[1:]
    assert levels[0].item() == pytest.approx(80.0) and levels[-1].item() == pytest.approx(0.002)
    torch.testing.assert_close(ratios, torch.full_like(ratios, (80 / 0.002) ** (1 / 9)))


def test_edm_likelihood_weighting_averages_uniformly_over_its_time():
    # Times are drawn log-uniform in σ; the bound averages uniformly over σ (EDM's time). The
    # estimate was 93.8 against the bound's 0.138 before the density ratio; now they agree.
    process, n, s2 = EDMProcess(), 400_000, 0.25
    x0 = s2**0.5 * torch.randn(
        n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    def exact(x, t):
        return -x / (s2 + t.to(x)[:, None] ** 2)

    def chunks(**kwargs):
        losses = [
            dsm_loss(exact, process, part, weighting="likelihood", generator=k, **kwargs).item()
            for k, part in enumerate(x0.chunk(20))
        ]
        mean = sum(losses) / len(losses)
        return mean, (sum((v - mean) ** 2 for v in losses) / (len(losses) - 1) / len(losses)) ** 0.5

    drawn, drawn_se = chunks()
    t = process.eps + (process.T - process.eps) * torch.rand(n // 20, dtype=torch.float64,
                                                             generator=torch.Generator().manual_seed(5))  # fmt: skip
    uniform, uniform_se = chunks(t=t)
    assert abs(drawn - uniform) < 5 * math.hypot(drawn_se, uniform_se), (drawn, uniform)


def test_levels_that_are_not_noise_levels_of_the_process_are_a_clear_error():
    with pytest.raises(ValueError, match="not noise levels"):
        sample_times(VPSDE(), 8, levels=torch.tensor([0.5, 2.0]))


def test_hybrid_loss_terms_and_gradient_paths():
    process = VPSDE()
    net = torch.nn.Linear(2, 2)
    model = ScoreModel(lambda x, c: net(x), process, output="noise")
    critic = torch.nn.Linear(2, 1)
    critic.weight.data.zero_()
    critic.bias.data.zero_()
    seen = []

    def discriminator(x):
        seen.append(x)
        return critic(x).squeeze(1)

    x0 = toy2d("ring", 64, generator=0).tensors[0]
    terms = hybrid_loss(model, process, x0, discriminator, adv_weight=0.5, generator=0)
    # A critic that says 0 everywhere: L_D = 1 + 1, L_G = 1.
    assert terms.discriminator.item() == pytest.approx(2.0)
    assert terms.generator.item() == pytest.approx(1.0)
    torch.testing.assert_close(terms.score, terms.dsm + 0.5)
    assert all(x.min() >= -1.0 and x.max() <= 1.0 for x in seen)
    terms.discriminator.backward(retain_graph=True)
    assert net.weight.grad is None and critic.weight.grad is not None
    terms.score.backward(inputs=list(net.parameters()))
    assert net.weight.grad is not None


def _first_and_last(history, window):
    return np.mean(history[:window]), np.mean(history[-window:])


def test_dsm_training_lowers_the_loss_on_the_ring():
    config = TrainConfig(
        net="mlp", net_kwargs=dict(dim=2, hidden=64), steps=200, batch_size=128, lr=1e-3
    )
    result = train(config, toy2d("ring", 4096, generator=0), progress=False)
    first, last = _first_and_last(result.history["loss"], 25)
    assert last < 0.6 * first
    assert result.step == 200 and result.checkpoint is None


@pytest.mark.slow
def test_dsm_training_lowers_the_loss_on_digits():
    config = TrainConfig(net_kwargs=TINY_UNET, steps=80, batch_size=64, lr=2e-3)
    result = train(config, digits(), progress=False)
    first, last = _first_and_last(result.history["loss"], 15)
    assert last < 0.6 * first
    assert result.score_fn(torch.zeros(2, 1, 8, 8), torch.full((2,), 0.5)).shape == (2, 1, 8, 8)


@pytest.mark.slow
def test_hybrid_training_moves_critic_and_generator_losses_in_opposite_directions():
    config = TrainConfig(
        net_kwargs=TINY_UNET,
        objective="hybrid",
        disc_kwargs=dict(base_width=16),
        steps=80,
        batch_size=64,
    )
    history = train(config, digits(), progress=False).history
    critic_first, critic_last = _first_and_last(history["discriminator"], 20)
    gen_first, gen_last = _first_and_last(history["generator"], 20)
    assert critic_last < critic_first - 0.1
    assert gen_last > gen_first + 0.1
    assert set(history) == {"loss", "dsm", "generator", "discriminator"}


def test_config_defaults_follow_the_objective_and_bad_values_are_rejected():
    assert TrainConfig().betas == (0.9, 0.999) and TrainConfig().lr == 2e-4
    hybrid = TrainConfig(objective="hybrid")
    assert hybrid.betas == (0.0, 0.9) and hybrid.lr == 1e-4
    with pytest.raises(ValueError, match="objective=.*: choose one of"):
        TrainConfig(objective="gan")
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    # grad_clip=0 froze the model; a negative value climbed the loss to 5e9
    for grad_clip in (0.0, -1.0, math.inf, "1"):
        with pytest.raises(ValueError, match="grad_clip must be a positive"):
            TrainConfig(grad_clip=grad_clip)
    assert TrainConfig(grad_clip=None).grad_clip is None
    for name in ("lr", "disc_lr"):
        with pytest.raises(ValueError, match=f"{name} must be a positive"):
            TrainConfig(objective="hybrid", **{name: -1e-3})
    # each of these trained on (a negative adv_weight maximised the adversarial term) or failed
    # later with torch's words
    for bad, match in [
        (dict(adv_weight=-1.0), "adv_weight must be a finite number >= 0"),
        (dict(adv_weight="x"), "adv_weight"),
        (dict(adv_weight=math.nan), "adv_weight"),
        (dict(disc_lr=None), "disc_lr must be a positive"),
        (dict(betas=(1.5, 0.9)), r"betas must be two numbers in \[0, 1\)"),
        (dict(disc_betas=(0.5,)), "disc_betas"),  # the critic's: checked for hybrid runs
        (dict(levels=2.5), "levels must be None or a positive int"),
        (dict(levels=True), "levels"),
        (dict(steps=-1), "steps must be non-negative"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(objective="hybrid", **bad)


def test_train_config_takes_every_process_of_the_registry_and_only_those():
    assert set(PROCESSES) == {"vp", "subvp", "ve", "edm"}
    for name, kind in PROCESSES.items():
        assert type(build_process(TrainConfig(process=name))) is kind
    edm = build_process(TrainConfig(process="edm", process_kwargs={"sigma_max": 5.0}))
    assert edm == EDMProcess(sigma_max=5.0) == make_process("edm", sigma_max=5.0)
    with pytest.raises(InputError, match="process=.*: choose one of"):
        TrainConfig(process="ddpm")
    with pytest.raises(
        InputError, match="unknown process 'ddpm': choose one of vp, subvp, ve, edm"
    ):
        make_process("ddpm")
    with pytest.raises(InputError, match="unknown parameter.*sigma_max.*'vp'"):
        make_process("vp", sigma_max=5.0)


def test_training_shows_a_progress_bar_on_stderr(capsys):
    train(_small_config(steps=3), toy2d("ring", 64, generator=0), progress=True)
    assert "train: 100%" in capsys.readouterr().err
    train(_small_config(steps=3), toy2d("ring", 64, generator=0), progress=False)
    assert capsys.readouterr().err == ""


def _small_config(**overrides):
    options = dict(
        net="mlp",
        net_kwargs=dict(dim=2, hidden=32, depth=2),
        steps=10,
        batch_size=32,
        checkpoint_every=4,
        ema_decay=0.9,
    )
    return TrainConfig(**(options | overrides))


def _assert_state_dicts_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_checkpoints_round_trip_exactly_and_are_pruned(tmp_path):
    config = _small_config(keep_checkpoints=2)
    result = train(config, toy2d("moons", 512, generator=0), tmp_path, progress=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_000000008.pt", "checkpoint_000000010.pt"]
    assert result.checkpoint == latest_checkpoint(tmp_path) == tmp_path / names[-1]
    state = torch.load(result.checkpoint, weights_only=True)
    assert TrainConfig(**state["config"]) == config and state["step"] == 10
    _assert_state_dicts_equal(
        load_checkpoint(result.checkpoint).state_dict(), result.score_fn.state_dict()
    )
    _assert_state_dicts_equal(load_checkpoint(tmp_path).state_dict(), result.score_fn.state_dict())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_a_checkpoint_write_that_fails_halfway_leaves_the_previous_one_intact(
    tmp_path, monkeypatch
):
    # The writer goes through a temporary file and os.replace: a crash while writing step 8 must
    # leave neither a truncated checkpoint_000000008.pt (which latest_checkpoint would pick and
    # load_checkpoint choke on) nor the temporary file.
    data = toy2d("moons", 256, generator=0)
    train(_small_config(steps=4), data, tmp_path, progress=False)
    real_save = torch.save

    def failing_save(state, f, *args, **kwargs):
        if state["step"] == 8:
            f.write(b"\x80\x02half a checkpoint")
            raise OSError("disk full")
        return real_save(state, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train(_small_config(steps=8), data, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000000004.pt"]
    assert torch.load(latest_checkpoint(tmp_path), weights_only=True)["step"] == 4
    load_checkpoint(tmp_path)


class _Interrupt(Exception):
    pass


def _interrupt_at(step):
    def callback(current, losses):
        if current == step:
            raise _Interrupt

    return callback


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(
            net="unet",
            net_kwargs=TINY_UNET | dict(dropout=0.2),
            objective="hybrid",
            disc_kwargs=dict(base_width=8),
            batch_size=16,
        ),
    ],
    ids=["mlp-dsm", "unet-dropout-hybrid"],
)
def test_an_interrupted_run_resumes_exactly_like_an_uninterrupted_one(tmp_path, overrides):
    config = _small_config(**overrides)
    data = toy2d("ring", 512, generator=0) if config.net == "mlp" else digits()
    whole = train(config, data, tmp_path / "whole", progress=False)
    with pytest.raises(_Interrupt):
        train(config, data, tmp_path / "split", progress=False, callback=_interrupt_at(6))
    assert latest_checkpoint(tmp_path / "split").name == "checkpoint_000000004.pt"
    resumed = train(config, data, tmp_path / "split", progress=False)
    assert resumed.step == whole.step == 10
    assert resumed.history == whole.history
    _assert_state_dicts_equal(resumed.score_fn.state_dict(), whole.score_fn.state_dict())
    # what a checkpoint samples, without the CLI's run.json
    items = data.tensors[0] if hasattr(data, "tensors") else data
    assert load_checkpoint(tmp_path / "whole").event_shape == tuple(items.shape[1:])


def test_training_leaves_the_global_rng_untouched():
    before = torch.get_rng_state()
    train(_small_config(steps=3), toy2d("ring", 128, generator=0), progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_resuming_with_a_different_config_is_a_clear_error(tmp_path):
    data = toy2d("ring", 128, generator=0)
    train(_small_config(steps=4), data, tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr differ"):
        train(_small_config(steps=8, lr=1e-2), data, tmp_path, progress=False)


def test_empty_data_and_a_run_past_its_steps_are_named(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        train(TrainConfig(net="mlp", net_kwargs={"dim": 2}, steps=1), torch.zeros(0, 2))
    config = TrainConfig(net="mlp", net_kwargs={"dim": 2, "hidden": 8, "depth": 1}, steps=4,
                         batch_size=8, checkpoint_every=4)  # fmt: skip
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    train(config, data, tmp_path, progress=False)
    with pytest.warns(UserWarning, match="checkpoint of step 4, past steps=2"):
        result = train(dataclasses.replace(config, steps=2), data, tmp_path, progress=False)
    assert result.step == 4


def test_too_little_data_for_one_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train(_small_config(batch_size=64), toy2d("ring", 10, generator=0), progress=False)


def test_the_ema_warms_up_so_a_short_run_is_not_its_initial_weights(tmp_path):
    # With a fixed decay of 0.999, 600 CLI steps left 55% of the initial weights in the EMA
    # (samples of std 6.9 for data of 0.6). At step k the decay is min(decay, (1 + k)/(10 + k)).
    config = _small_config(steps=1, ema_decay=0.999)
    initial = build_model(config).state_dict()
    result = train(config, toy2d("ring", 128, generator=0), tmp_path, progress=False)
    raw = torch.load(result.checkpoint, weights_only=True)["model"]
    d = 2 / 11
    for name, ema in result.score_fn.state_dict().items():
        torch.testing.assert_close(ema, d * initial[name] + (1 - d) * raw[name])


def test_resuming_on_other_data_is_a_clear_error(tmp_path):
    train(_small_config(steps=4), toy2d("moons", 128, generator=0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="trained on other data"):
        train(_small_config(steps=8), toy2d("ring", 128, generator=0), tmp_path, progress=False)


def test_a_non_finite_loss_stops_training_before_its_checkpoint(tmp_path, monkeypatch):
    data = toy2d("ring", 128, generator=0)
    real = trainer.dsm_loss
    calls = []

    def diverging(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * math.nan if len(calls) == 3 else loss

    monkeypatch.setattr(trainer, "dsm_loss", diverging)
    with pytest.raises(ValueError, match=r"non-finite at step 3 .* checkpoint of step 2 is kept"):
        train(_small_config(steps=8, checkpoint_every=2), data, tmp_path, progress=False)
    assert latest_checkpoint(tmp_path).name == "checkpoint_000000002.pt"
    points = data.tensors[0].clone()
    points[5, 1] = math.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        train(_small_config(), points, progress=False)


class _WrappingDataset(torch.utils.data.Dataset):
    """Indexing wraps around: iteration (which stops at an IndexError) never ends."""

    def __init__(self, items, wrap=lambda x: x):
        self.items, self.wrap = items, wrap

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.wrap(self.items[i % len(self.items)])


def test_data_sets_are_read_by_index_and_odd_data_is_named():
    data = toy2d("ring", 64, generator=0).tensors[0]
    train(_small_config(steps=1), _WrappingDataset(data), progress=False)
    train(_small_config(steps=1), _WrappingDataset(data.numpy(), lambda x: (x, 0)), progress=False)
    with pytest.raises(TypeError, match="a data set item is dict"):
        train(_small_config(steps=1), _WrappingDataset(data, lambda x: {"x": x}), progress=False)
    with pytest.raises(TypeError, match="data is torch.uint8: .* data.float"):
        train(_small_config(steps=1), (data * 100).to(torch.uint8), progress=False)
    with pytest.raises(ValueError, match=r"data\[:, None\]"):
        train(_small_config(steps=1), data[:, 0], progress=False)
    with pytest.warns(UserWarning, match="scale the data into that range"):
        train(_small_config(steps=1), 255 * data, progress=False)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        _small_config(batch_size=4.0)


def test_a_damaged_checkpoint_is_named_with_what_to_do(tmp_path):
    data = toy2d("ring", 128, generator=0)
    train(_small_config(steps=4, checkpoint_every=2), data, tmp_path, progress=False)
    (tmp_path / "checkpoint_000000006.pt").write_bytes(b"\x80\x02half a checkpoint")
    (tmp_path / ".checkpoint-abc.tmp").write_bytes(b"left by a killed run")
    message = (
        r"cannot read checkpoint .*checkpoint_000000006.pt .* resume from checkpoint_000000004"
    )
    with pytest.raises(ValueError, match=message):
        train(_small_config(steps=8, checkpoint_every=2), data, tmp_path, progress=False)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path)
    assert not (tmp_path / ".checkpoint-abc.tmp").exists()


def test_checkpoints_are_written_with_the_umasks_permissions(tmp_path):
    # a private temporary file (mode 0600) renamed into place kept other users from reading it
    umask = os.umask(0)
    os.umask(umask)
    result = train(_small_config(steps=2), toy2d("ring", 64, generator=0), tmp_path, progress=False)
    assert stat.S_IMODE(result.checkpoint.stat().st_mode) == 0o666 & ~umask


class _Affine(torch.nn.Module):
    """A network of a user's own: ``net(x, c)`` as ScoreModel calls it."""

    def __init__(self, dim: int, width: int = 16):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(dim + 1, width), torch.nn.SiLU(), torch.nn.Linear(width, dim)
        )

    def forward(self, x, c):
        return self.body(torch.cat([x, c[:, None].to(x)], dim=1))


@pytest.mark.parametrize("objective", ["dsm", "hybrid"])
def test_a_registered_network_trains_resumes_and_loads(objective, tmp_path, monkeypatch):
    # only "mlp" and "unet" could be trained: EMA, checkpoints and resume were theirs alone
    monkeypatch.setattr(trainer, "NETS", dict(trainer.NETS))  # the registry as it was, after
    register_net("affine", _Affine)
    config = TrainConfig(net="affine", net_kwargs={"dim": 2}, objective=objective, steps=6,
                         batch_size=16, checkpoint_every=3, conditioning="999t")  # fmt: skip
    data = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    whole = train(config, data, tmp_path / "whole", progress=False)
    train(dataclasses.replace(config, steps=3), data, tmp_path / "split", progress=False)
    resumed = train(config, data, tmp_path / "split", progress=False)
    for a, b in zip(whole.score_fn.parameters(), resumed.score_fn.parameters(), strict=True):
        assert torch.equal(a, b)
    loaded = load_checkpoint(tmp_path / "whole")
    assert isinstance(loaded.net, _Affine)
    with pytest.raises(ValueError, match="built-in network"):
        register_net("mlp", _Affine)
    with pytest.raises(ValueError, match=r"or register a network of your own"):
        TrainConfig(net="mine")


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood"])
def test_edm_losses_run_under_inference_mode(weighting):
    # the likelihood's density ratio by reverse mode raised there, for every weighting
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        loss = dsm_loss(lambda x, t: -x, EDMProcess(), x0, weighting=weighting, generator=0)
    assert math.isfinite(loss.item())


def test_config_numbers_are_stored_as_python_numbers_and_dsm_ignores_critic_settings(tmp_path):
    # a NumPy lr was pickled into the checkpoint, which then could not be loaded; a DSM run's
    # unused critic settings (disc_lr=None in older checkpoints) were refused
    config = TrainConfig(net="mlp", net_kwargs={"dim": 2, "hidden": 8, "depth": 1}, steps=2,
                         batch_size=8, lr=np.float32(1e-3), betas=(np.float64(0.9), 0.999),
                         levels=np.int64(5), disc_lr=None, adv_weight=-1.0)  # fmt: skip
    assert type(config.lr) is float and type(config.betas[0]) is float
    assert type(config.levels) is int
    train(config, torch.randn(32, 2, generator=torch.Generator().manual_seed(0)), tmp_path,
          progress=False)  # fmt: skip
    assert isinstance(load_checkpoint(tmp_path), ScoreModel)

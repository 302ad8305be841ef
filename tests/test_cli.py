"""The ``sdekit-score`` command line, end to end on tiny settings."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import matplotlib.image
import pytest
import torch

from sdekit import SolveError
from sdekit_score import cli
from sdekit_score.app import demo
from sdekit_score.evaluation.metrics import DigitsClassifier
from sdekit_score.sampling.processes import PROCESSES
from sdekit_score.training.trainer import latest_checkpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 50


def assert_samples(out, shape):
    samples = torch.load(out / "samples.pt", weights_only=True)
    assert samples.shape == shape and torch.isfinite(samples).all()
    return json.loads((out / "stats.json").read_text())


def run(argv, capsys):
    """``main(argv)`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits MLP trained for a few steps by `train`, shared by the tests that sample it."""
    out = tmp_path_factory.mktemp("digits")
    argv = ["train", "--data", "digits", "--process", "ve", "--steps", 4, "--width", 32]
    assert cli.main([str(a) for a in [*argv, "--batch-size", 16, "--out", out]]) == 0
    return out


def test_sample_on_a_target_writes_samples_stats_and_a_scatter_plot(tmp_path, capsys):
    argv = ["sample", "--target", "gmm2d", "--sampler", "ggf", "--option", "eps_rel=0.05"]
    status, out, _ = run([*argv, "--n", 50, "--batch-size", 20, "--out", tmp_path], capsys)
    assert status == 0
    stats = assert_samples(tmp_path, (50, 2))
    assert stats["sampler"] == "ggf" and stats["options"] == {"eps_rel": 0.05}
    assert stats["nfe_min"] <= stats["nfe"] <= stats["nfe_max"]
    assert stats["wall_s"] > 0 and stats["distances"]["sliced_wasserstein"] < 0.5
    assert json.loads(out) == stats
    assert_png(tmp_path / "samples.png")


def test_the_console_module_runs_in_a_subprocess(tmp_path):
    argv = ["sample", "--target", "gmm2d", "--process", "ve", "--sampler", "cas", "--n", "40"]
    result = subprocess.run(
        [sys.executable, "-m", "sdekit_score.cli", *argv, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert assert_samples(tmp_path, (40, 2))["nfe"] == 232
    assert_png(tmp_path / "samples.png")


def test_train_writes_checkpoints_and_resumes_to_more_steps(digits_run, capsys):
    assert len(list(digits_run.glob("checkpoint_*.pt"))) == 1
    assert json.loads((digits_run / "run.json").read_text())["image_shape"] == [1, 8, 8]
    argv = ["train", "--data", "digits", "--process", "ve", "--steps", 6, "--width", 32]
    status, out, _ = run([*argv, "--batch-size", 16, "--out", digits_run], capsys)
    assert status == 0 and "trained steps 5-6 in" in out  # this run's, not "6 steps"
    assert (digits_run / "checkpoint_000000006.pt").exists()
    argv[argv.index("--steps") + 1] = 4  # fewer steps than done: said, not "trained 6 steps"
    status, out, _ = run([*argv, "--batch-size", 16, "--out", digits_run], capsys)
    assert status == 0 and "already at step 6 (--steps 4): nothing to do" in out


def test_a_killed_training_process_resumes_from_its_last_checkpoint_exactly(tmp_path, capsys):
    argv = ["train", "--data", "ring", "--process", "vp", "--width", 16, "--n-data", 256]
    argv += ["--batch-size", 32, "--checkpoint-every", 20, "--threads", 1]
    command = [sys.executable, "-m", "sdekit_score.cli", *map(str, argv)]
    killed = subprocess.Popen([*command, "--steps", "1000000", "--out", str(tmp_path / "killed")])
    try:
        deadline = time.monotonic() + 120
        while (newest := latest_checkpoint(tmp_path / "killed")) is None or newest.name < (
            "checkpoint_000000040.pt"
        ):
            assert killed.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        killed.kill()  # SIGKILL: no handler runs, whatever was being written stays as it is
        killed.wait()
    last = torch.load(latest_checkpoint(tmp_path / "killed"), weights_only=True)["step"]
    assert last >= 40
    status, out, _ = run([*argv, "--steps", last + 10, "--out", tmp_path / "killed"], capsys)
    assert status == 0 and f"trained steps {last + 1}-{last + 10} in" in out
    status, _, _ = run([*argv, "--steps", last + 10, "--out", tmp_path / "whole"], capsys)
    assert status == 0
    resumed, whole = (
        torch.load(latest_checkpoint(tmp_path / name), weights_only=True)
        for name in ("killed", "whole")
    )
    assert resumed["step"] == whole["step"] == last + 10
    for part in ("model", "ema"):
        for key, value in whole[part].items():
            assert torch.equal(resumed[part][key], value), (part, key)


def test_sampling_a_digits_checkpoint_gives_images_and_a_grid(digits_run, tmp_path, capsys):
    argv = ["sample", "--checkpoint", digits_run, "--sampler", "em", "--option", "steps=20"]
    status, _, _ = run([*argv, "--n", 12, "--no-denoise", "--out", tmp_path], capsys)
    assert status == 0
    stats = assert_samples(tmp_path, (12, 1, 8, 8))
    assert stats["nfe"] == 20 and stats["denoise"] is False
    assert_png(tmp_path / "samples.png")


def test_a_two_d_toy_trains_and_samples_as_points(tmp_path, capsys):
    argv = ["train", "--data", "ring", "--process", "vp", "--steps", 3, "--width", 16]
    assert run([*argv, "--n-data", 64, "--batch-size", 32, "--out", tmp_path / "m"], capsys)[0] == 0
    argv = ["sample", "--checkpoint", tmp_path / "m", "--sampler", "em", "--option", "steps=5"]
    assert run([*argv, "--n", 30, "--out", tmp_path / "s"], capsys)[0] == 0
    assert_samples(tmp_path / "s", (30, 2))
    assert_png(tmp_path / "s" / "samples.png")


def test_bench_prints_one_row_per_sampler(tmp_path, capsys):
    argv = ["bench", "--target", "gmm2d", "--process", "vp", "--samplers", "em,ggf"]
    status, out, _ = run([*argv, "--n", 100, "--out", tmp_path], capsys)
    assert status == 0
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert [r["sampler"] for r in rows] == ["em", "ggf"]
    assert rows[0]["nfe"] == 1001 and rows[1]["nfe"] < 1001
    assert "NFE/sample" in out and len(out.splitlines()) == 5


def test_demo_writes_a_grid_per_sampler_a_plot_and_a_table(tmp_path, capsys, monkeypatch):
    # An untrained classifier: the metrics' values do not matter here, their plumbing does.
    monkeypatch.setattr(demo, "digits_classifier", lambda **_: DigitsClassifier().eval())
    argv = ["demo", "--quick", "--train-steps", 3, "--n", 8, "--threads", 1, "--out", tmp_path]
    status, out, err = run(argv, capsys)
    assert status == 0
    config = demo.demo_config(quick=True)
    for k, run_ in enumerate(config.runs, 1):
        assert f"sampling {run_.label} ({k}/{len(config.runs)})" in out
    for label in config.figure:
        assert_png(tmp_path / f"grid_{label}.png")
        assert any(line.split()[0] == label for line in out.splitlines())
    # Progress bars on stderr, also when it is not a terminal: training, then each sampler's.
    assert "train: 100%" in err and err.count("100%") > len(config.runs)
    assert_png(tmp_path / "quality_vs_nfe.png")
    assert "(a smoke run: a briefly trained model, few samples" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["label"] for r in results["rows"]} == {r.label for r in config.runs}


def test_acceptance_needs_confident_samples_close_fd_and_under_half_the_nfe():
    def rows(confident, fd, nfe):
        return [
            {"label": "em-1000", "fd": 40.0, "nfe": 1001.0, "confident": 0.85},
            {"label": "ggf", "fd": fd, "nfe": nfe, "confident": confident},
        ]

    met = demo.acceptance(rows(0.88, 41.4, 300.0))
    assert met["met"] and met["fd_ratio"] == pytest.approx(1.035)
    assert met["nfe_ratio"] == pytest.approx(300 / 1001)
    assert not demo.acceptance(rows(0.79, 41.4, 300.0))["met"]
    assert not demo.acceptance(rows(0.88, 44.5, 300.0))["met"]
    assert not demo.acceptance(rows(0.88, 41.4, 501.0))["met"]


def test_every_registered_process_is_a_choice_and_edm_trains_and_samples(tmp_path, capsys):
    parser = cli.build_parser()
    for command in ("train", "sample", "bench"):
        [process] = [a for a in _subparser(parser, command)._actions if a.dest == "process"]
        assert tuple(process.choices) == tuple(PROCESSES)
    argv = ["train", "--data", "ring", "--process", "edm", "--steps", 3, "--width", 16]
    status, out, _ = run(
        [*argv, "--n-data", 64, "--batch-size", 32, "--out", tmp_path / "m"], capsys
    )
    assert status == 0 and "trained 3 steps" in out
    config = torch.load(latest_checkpoint(tmp_path / "m"), weights_only=True)["config"]
    assert config["process"] == "edm" and config["conditioning"] == "log_sigma"
    argv = ["sample", "--checkpoint", tmp_path / "m", "--sampler", "em", "--option", "steps=5"]
    assert run([*argv, "--n", 10, "--out", tmp_path / "s"], capsys)[0] == 0
    assert_samples(tmp_path / "s", (10, 2))


def _subparser(parser, command):
    [commands] = [a for a in parser._actions if a.dest == "command"]
    return commands.choices[command]


@pytest.mark.parametrize("command", ["train", "sample", "bench", "demo"])
def test_threads_default_to_one_and_the_callers_count_is_restored(command, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, f"cmd_{command}", lambda args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        argv = {"train": ["--out", "o"], "sample": ["--target", "gmm2d", "--out", "o"]}
        assert cli.main([command, *argv.get(command, [])]) == 0
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert "--threads" in _subparser(cli.build_parser(), command).format_help()


SAMPLE_GMM = ["sample", "--target", "gmm2d", "--sampler", "em", "--option", "steps=5", "--n", 10]


def test_a_dtype_option_samples_in_that_dtype(tmp_path, capsys):
    status, out, err = run([*SAMPLE_GMM, "--option", "dtype=float64", "--out", tmp_path], capsys)
    assert status == 0, err
    assert torch.load(tmp_path / "samples.pt").dtype == torch.float64
    assert json.loads((tmp_path / "stats.json").read_text())["options"]["dtype"] == "torch.float64"


@pytest.mark.parametrize("error", [ValueError, TypeError])
def test_an_internal_error_is_not_reported_as_bad_input(error, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise error("a defect inside the library")

    monkeypatch.setattr(cli, "target_distances", broken)
    with pytest.raises(error, match="a defect inside the library"):
        cli.main([str(a) for a in [*SAMPLE_GMM, "--out", tmp_path]])
    assert "bad input" not in capsys.readouterr().err


def test_a_solve_that_cannot_finish_exits_1_with_its_message_and_no_traceback(
    tmp_path, capsys, monkeypatch
):
    def fails(*args, **kwargs):
        raise SolveError("step size 1e-12 fell below dt_min for 3 samples")

    monkeypatch.setattr(cli, "draw", fails)
    status, out, err = run([*SAMPLE_GMM, "--out", tmp_path], capsys)
    assert status == 1 and out == ""
    assert err == "sdekit-score: error: step size 1e-12 fell below dt_min for 3 samples\n"


BAD_INPUT = [
    (["sample", "--checkpoint", "missing.pt", "--out", "o"], "checkpoint not found"),
    (["sample", "--target", "gmm2d", "--sampler", "rk4", "--out", "o"], "unknown sampler"),
    (["sample", "--target", "gmm2d", "--n", "-5", "--out", "o"], "positive integer"),
    (["sample", "--target", "gmm2d", "--option", "eps_rel", "--out", "o"], "malformed --option"),
    (["sample", "--target", "gmm2d", "--option", "bogus=1", "--out", "o"], "unknown option"),
    (
        ["sample", "--target", "gmm2d", "--option", "throw=false", "--out", "o"],
        "keeps whole chunks",
    ),
    *(  # sample()'s own arguments gave a TypeError traceback
        (
            ["sample", "--target", "gmm2d", "--option", f"{key}=1", "--out", "o"],
            "set by the command",
        )
        for key in ("denoise", "generator", "device", "progress", "shape", "process")
    ),
    (["sample", "--target", "gmm2d", "--option", "dtype=int8", "--out", "o"], "floating dtype"),
    (["sample", "--target", "nope", "--out", "o"], "unknown target"),
    (["sample", "--target", "gmm2d", "--process", "xx", "--out", "o"], "invalid choice"),
    (["sample", "--target", "gmm2d", "--device", "gpu0", "--out", "o"], "not a torch device"),
    *(
        []
        if torch.cuda.is_available()
        else [(["sample", "--target", "gmm2d", "--device", "cuda", "--out", "o"], "no cuda device")]
    ),
    (["sample", "--checkpoint", "m.pt", "--process", "ve", "--out", "o"], "chooses the process"),
    (["train", "--process", "vp", "--sigma-max", "5", "--out", "o"], "ve or edm only"),
    (["train", "--steps", "0", "--out", "o"], "positive integer"),
    (["bench", "--samplers", "em,xx"], "unknown sampler"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_nonzero_with_one_line_and_no_traceback(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(argv, capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sdekit-score: error: ") and message in err


def test_an_output_directory_that_cannot_be_made_exits_1_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    status, out, err = run([*SAMPLE_GMM, "--out", tmp_path / "file" / "run"], capsys)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("sdekit-score: error: ") and "file" in err


def test_bad_input_in_a_subprocess_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sdekit_score.cli", "sample", "--checkpoint", "x.pt", "--out", "o"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr == "sdekit-score: error: checkpoint not found: x.pt\n"


def test_samples_that_cannot_be_written_keep_their_shards_and_a_rerun_writes_them(tmp_path, capsys):
    # torch.save into a directory raised RuntimeError: a traceback, and no word of the shards
    (tmp_path / "samples.pt").mkdir()
    status, out, err = run([*SAMPLE_GMM, "--no-progress", "--out", tmp_path], capsys)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert "cannot write" in err and "shards are kept" in err
    (tmp_path / "samples.pt").rmdir()
    status, out, _ = run([*SAMPLE_GMM, "--out", tmp_path], capsys)
    assert status == 0 and json.loads(out)["chunks_generated"] == 0
    assert_samples(tmp_path, (10, 2))


def test_bench_checks_its_output_folder_before_the_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setattr(cli, "bench", lambda *a, **k: pytest.fail("ran before --out was made"))
    argv = ["bench", "--target", "gmm2d", "--samplers", "em", "--out", tmp_path / "file" / "b"]
    status, _, err = run(argv, capsys)
    assert status == 1 and "file" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (torch.zeros(3), r"not a checkpoint of sdekit_score's trainer .*found Tensor"),
        ({"config": {}}, r"found a dict without \['ema'\]"),
        ({"config": {"net": "mlp"}, "ema": {}}, r"its config does not build a model"),
    ],
)
def test_a_torch_file_that_is_not_a_checkpoint_is_named(content, message, tmp_path, capsys):
    # an IndexError or TypeError traceback before
    torch.save(content, tmp_path / "model.pt")
    argv = ["sample", "--checkpoint", tmp_path / "model.pt", "--sampler", "em", "--n", 2]
    status, _, err = run([*argv, "--out", tmp_path / "o"], capsys)
    assert status == 2 and err.count("\n") == 1 and re.search(message, err)


def test_an_unreadable_run_file_is_named(digits_run, tmp_path, capsys):
    copy = shutil.copytree(digits_run, tmp_path / "run")
    (copy / "run.json").write_text("")  # a run killed while writing it, before writes were atomic
    argv = ["sample", "--checkpoint", copy, "--sampler", "em", "--option", "steps=2", "--n", 2]
    status, _, err = run([*argv, "--out", tmp_path / "o"], capsys)
    assert status == 2 and "cannot read" in err and "run.json" in err


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_sample_says_what_is_kept(how, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        if how == "sigterm":  # as a scheduler pre-empting the job: was a silent exit -15
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "draw", interrupted)
    status, _, err = run([*SAMPLE_GMM, "--out", tmp_path], capsys)
    assert status == 130
    assert "interrupted: the finished chunks are kept in OUT/shards; rerun" in err
    assert signal.getsignal(signal.SIGTERM) == before

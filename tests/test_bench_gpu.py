"""bench/gpu.py: a quick CPU smoke run end to end, and its arithmetic checked in closed form."""

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "bench_gpu", Path(__file__).parents[1] / "bench" / "gpu.py"
)
gpu = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gpu  # where torch.compile looks the functions' module up
_spec.loader.exec_module(gpu)


@pytest.fixture(autouse=True)
def _keep_threads():
    """The benchmark sets torch's CPU threads: give the worker its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_quick_cpu_run_writes_both_tables_and_only_its_two_files(tmp_path, capsys):
    # A budget far above the 12 s it takes, so that a loaded machine does not skip a cell.
    argv = ["--quick", "--device", "cpu", "--budget", "600", "--out", str(tmp_path)]
    results = gpu.main(argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu.json", "gpu.md"]
    assert json.loads((tmp_path / "gpu.json").read_text())["quick"] is True
    printed = capsys.readouterr().out
    assert "## (a) Sampler overhead" in printed and "## (b) sdekit.solve" in printed
    assert printed.strip() == (tmp_path / "gpu.md").read_text().strip()
    assert "stopped" not in results
    rows = [r for r in results["overhead"] if "batch" in r]
    assert [(r["variant"], r["batch"]) for r in rows] == [
        (v, b) for v in ("eager", "bf16", "bf16+cl") for b in (1, 4)
    ]
    for row in rows:
        assert set(row["samplers"]) == set(gpu.SAMPLERS)
        for name, cell in row["samplers"].items():
            assert "overhead" in cell, (row["variant"], row["batch"], name, cell)
            assert cell["net_s"] > 0 and cell["wall_s"] > 0
            assert cell["overhead"] == pytest.approx(
                (cell["wall_s"] - cell["net_s"]) / cell["net_s"]
            )
            fixed = gpu.nfe_estimate(name, gpu.QUICK_SAMPLER_OPTIONS[name])
            if name in ("em", "pc", "dpmpp_2m", "als"):  # fixed steps: every call at full batch
                assert cell["calls"] == fixed and cell["mean_rows"] == row["batch"]
    for row in results["solve"]:
        assert row["eager"]["us_per_step"] > 0
        assert row["compiled"] == {"skipped": "--compile no"}


def test_a_zero_budget_skips_every_measurement_and_still_reports():
    results = gpu.main(["--quick", "--device", "cpu", "--budget", "0"])
    rows = results["overhead"]
    assert rows and all(r.get("skipped") == "budget" for r in rows)
    assert all(cell.get("skipped") == "budget" for r in results["solve"] for cell in [r["eager"]])


def test_overhead_is_wall_minus_the_calls_network_time_over_it():
    times = {1: 1.0, 2: 1.5, 4: 2.0}
    assert gpu.interpolate(times, 3) == pytest.approx(1.75)
    assert gpu.interpolate(times, 8) == pytest.approx(4.0)  # proportional beyond the largest
    net, ratio = gpu.overhead(10.0, [4, 4, 3, 1], times)
    assert net == pytest.approx(2.0 + 2.0 + 1.75 + 1.0)
    assert ratio == pytest.approx((10.0 - 6.75) / 6.75)
    assert gpu.batch_sizes(128) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert gpu.batch_sizes(12) == [1, 2, 4, 8, 12]


def test_fixed_step_nfe_follows_the_sampler_table():
    assert gpu.nfe_estimate("em", {"steps": 30}) == 31
    assert gpu.nfe_estimate("pc", {"steps": 30}) == 61
    assert gpu.nfe_estimate("als", {"n_levels": 30}) == 30
    assert gpu.nfe_estimate("ode", {}) == gpu.ADAPTIVE_NFE_GUESS


def test_quick_leaves_compile_out_unless_asked():
    assert "compiled" not in gpu.parse_args(["--quick", "--device", "cpu"]).variants
    args = gpu.parse_args(["--quick", "--device", "cpu", "--compile", "yes"])
    assert args.compile and "compiled" in args.variants
    with pytest.raises(SystemExit):
        gpu.parse_args(["--variants", "eager,turbo"])


def test_the_bench_score_is_the_gaussian_score_when_the_network_is_silent():
    process = gpu.ss.VPSDE()
    score = gpu.BenchScore(lambda x, c: torch.zeros_like(x), process)
    x = torch.randn(3, 3, 4, 4)
    t = torch.tensor([0.1, 0.5, 0.9])
    var = (process.alpha(t) ** 2 * gpu.DATA_STD**2 + process.sigma(t) ** 2)[:, None, None, None]
    torch.testing.assert_close(score(x, t), -x / var)


@pytest.mark.slow
def test_compiled_solve_rows_run_on_cpu():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = gpu.main(["--quick", "--device", "cpu", "--parts", "b", "--compile", "yes"])
    assert not [w for w in caught if "torch.compile is unavailable" in str(w.message)]
    compiled = results["solve"][0]
    assert results["solve"][0]["compiled_chunk"] > 0
    assert compiled["compiled"]["us_per_step"] > 0 and compiled["compiled"]["first_run_s"] > 0

"""bench/samplers.py on a digits checkpoint: a smoke run writes its table, JSON and plot into --out
only, and each run's FD is paired with the converged flow from the same prior draws."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdekit_score import cli

SCRIPT = Path(__file__).parents[1] / "bench" / "samplers.py"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    argv = ["train", "--data", "digits", "--process", "vp", "--steps", 4, "--width", 32]
    assert cli.main([str(a) for a in [*argv, "--batch-size", 16, "--out", out]]) == 0
    return out


def test_digits_block_alone_writes_only_into_out_and_pairs_with_the_flow(tmp_path, checkpoint):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--dims", "--digits", str(checkpoint),
         "--digits-n", "40", "--seeds", "0", "1", "--quick", "--no-kdiffusion",
         "--only", "unipc", "em"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| unipc | 49 steps, logsnr | 52 |" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["samplers_digits.json", "samplers_digits.md", "samplers_digits.png"]
    rows = json.loads((out / "samplers_digits.json").read_text())["results"]
    assert {r["sampler"] for r in rows} == {"unipc", "em"}
    for row in rows:
        assert len(row["per_seed"]) == 2 and row["fd"] > 0 and 0 <= row["class_tv"] <= 1
    # Every run of a seed is paired with the same converged flow (its FD, fd - fd_vs_flow, is
    # the same in every row), and the two seeds' prior draws give different flows.
    em = next(r for r in rows if r["sampler"] == "em")
    offsets = [run["fd"] - run["fd_vs_flow"] for run in em["per_seed"]]
    unipc = [r for r in rows if r["sampler"] == "unipc"]
    assert offsets[0] != offsets[1]
    for row in unipc:
        assert [run["fd"] - run["fd_vs_flow"] for run in row["per_seed"]] == pytest.approx(offsets)

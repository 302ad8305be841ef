"""bench/diffrax_euler.py: a smoke run without jax prints the table and writes only into --out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "bench" / "diffrax_euler.py"


def test_quick_run_without_jax_prints_the_table_and_writes_only_into_out(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-diffrax", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "| minimal eager loop (floor) | " in result.stdout
    assert "| diffrax euler (jit) | not run | not run |" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["diffrax_euler.json", "diffrax_euler.md"]
    record = json.loads((out / "diffrax_euler.json").read_text())
    assert set(record["us_per_step_median"]) == {
        "minimal eager loop (floor)",
        "sdekit euler",
        "sdekit euler compiled",
    }
    assert all(v > 0 for values in record["us_per_step_median"].values() for v in values)


def test_a_missing_jax_python_leaves_the_diffrax_rows_not_run(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--jax-python", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "diffrax: not run (no jax Python at" in result.stdout
    assert "compiled ÷ diffrax | not run | not run |" in result.stdout
    assert list(tmp_path.iterdir()) == []


JAX_PYTHON = Path("/work/.jaxenv/bin/python")


@pytest.mark.slow
@pytest.mark.skipif(not JAX_PYTHON.exists(), reason=f"no jax Python at {JAX_PYTHON}")
def test_quick_run_with_a_jax_python_times_diffrax(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--jax-python", str(JAX_PYTHON)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| diffrax"))
    assert "not run" not in row

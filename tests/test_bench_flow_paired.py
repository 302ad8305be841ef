"""bench/flow_paired.py: a smoke run prints the table and writes only into --out; the converged
flow's own paired error is zero, so the pairing is by prior draw."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "bench" / "flow_paired.py"


def test_quick_run_writes_only_into_out_and_pairs_by_prior_draw(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--no-kdiffusion", "--processes", "vp",
         "--batch", "300", "--seeds", "0", "1", "--steps", "8", "30", "--converged-steps", "30"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| 2 | vp | dpmpp_3m | 8 steps, logsnr |" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["flow_paired.json", "flow_paired.md"]
    record = json.loads((out / "flow_paired.json").read_text())["rows"]
    rows = {(r["sampler"], r["setting"]): r for r in record}
    # the reference is dpmpp_3m's 30 steps on its default grid: the same run
    assert rows["dpmpp_3m", "30 steps, logsnr"]["per_seed"] == [0.0, 0.0]
    assert abs(rows["dpmpp_3m", "8 steps, logsnr"]["error"]) > 0
    assert rows["dpmpp_3m", "8 steps, logsnr_power"] != rows["dpmpp_3m", "8 steps, logsnr"]
    assert {r["sampler"] for r in record} == {"dpmpp_2m", "dpmpp_3m", "unipc", "dpm_adaptive"}

"""bench/adaptive_overhead.py: a smoke run prints the table and writes only into --out."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "bench" / "adaptive_overhead.py"


def test_quick_run_prints_every_method_and_writes_only_into_out(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "| sdekit improved_euler, adaptive per sample | " in result.stdout
    assert "| sdekit improved_euler, adaptive per sample, compiled | " in result.stdout
    assert "| sdekit improved_euler, adaptive per sample, compiled, one attempt per call | " in (
        result.stdout
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == [
        "adaptive_overhead.json",
        "adaptive_overhead.md",
    ]
    record = json.loads((out / "adaptive_overhead.json").read_text())
    assert set(record) == {"64x8", "1024x64"}
    for row in record.values():
        assert len(row) == 8 and all(m["us"] > 0 and m["attempts"] > 0 for m in row.values())

"""Every example runs as its docstring says, ``python examples/X.py OUT``, and writes its figure.

Each runs in a subprocess with ``SDEKIT_EXAMPLE_QUICK=1`` (smaller ensembles, fewer iterations;
the same code path) and must write its figure (a PNG) into ``OUT`` within a minute of CPU time.
An example that needs a package of one of the project's optional extras that is not installed
is skipped with that reason. Together they take longer than a unit test should, so they are
marked slow (CI runs them).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
CPU_SECONDS = 60
# Import names of the packages of the optional extras, which an example may need and a machine lack.
_IMPORT_NAMES = {"scikit_learn": "sklearn"}
OPTIONAL_MODULES = {
    _IMPORT_NAMES.get(name, name)
    for requirement in metadata.requires("sdekit") or []
    if "extra ==" in requirement
    for name in [re.split(r"[<>=!~\[; ]", requirement)[0].lower().replace("-", "_")]
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_example_runs_and_writes_its_figure(example, tmp_path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "SDEKIT_EXAMPLE_QUICK": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    before = _cpu_seconds()
    done = subprocess.run(
        [sys.executable, str(example), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=10 * CPU_SECONDS,  # wall clock: generous, the machine may be shared
    )
    cpu = _cpu_seconds() - before
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", done.stderr)
    if done.returncode != 0 and missing and missing.group(1).split(".")[0] in OPTIONAL_MODULES:
        pytest.skip(f"{example.name} needs {missing.group(1)} (an optional extra), not installed")
    assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"
    figures = sorted(out.glob("*.png"))
    assert figures, f"{example.name} wrote no PNG figure into {out}:\n{done.stdout}"
    assert all(f.stat().st_size > 5_000 for f in figures), f"{example.name}: empty figure"
    assert cpu < CPU_SECONDS, f"{example.name} took {cpu:.0f} s of CPU time"


def test_every_example_documents_its_command_with_an_output_folder():
    for example in EXAMPLES:
        text = example.read_text(encoding="utf-8")
        assert f"python examples/{example.name} " in text, f"{example.name}: document the command"


def test_the_readme_and_the_examples_page_list_every_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for example in EXAMPLES:
        assert f"examples/{example.name}" in readme, f"README.md does not list {example.name}"
        assert f"examples/{example.name}" in page, f"docs/examples.md does not list {example.name}"

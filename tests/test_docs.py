"""The documentation's code runs as written, and its generated tables cover the code.

Every fenced ``python`` block of ``docs/**/*.md`` and ``README.md`` is executed. The blocks of one
page run in order in one namespace, as one session (a later block may use an earlier one's
names), in a fresh temporary directory; ``assert`` statements in them are the checks. A block
that imports a package of one of the project's optional extras (``pyproject.toml``) that is not
installed is skipped with that reason. Any other failure fails the test, with the page and its
line in the traceback; that includes importing a package the project does not know (a
placeholder such as ``my_package`` makes a block that can never run). Commands that cannot run
here (``torchrun``, shell) and sketches belong in ``bash`` or plain blocks, which are not
executed.
"""

from __future__ import annotations

import re
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Import names of the packages of the optional extras, which a page may need and a machine lack.
_IMPORT_NAMES = {"scikit_learn": "sklearn"}
OPTIONAL_MODULES = {
    _IMPORT_NAMES.get(name, name)
    for requirement in metadata.requires("sdekit") or []
    if "extra ==" in requirement
    for name in [re.split(r"[<>=!~\[; ]", requirement)[0].lower().replace("-", "_")]
}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# Pages whose blocks together take more than a few seconds on one CPU thread.
SLOW_PAGES = {"docs/concepts/training.md", "docs/migration.md"}


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the block's first code line, code)`` for each ``python`` block."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) in ("python", "py"):
            line = text.count("\n", 0, match.start(2)) + 1
            blocks.append((line, match.group(2)))
    return blocks


def pages() -> list[Path]:
    found = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
    return [p for p in found if python_blocks(p.read_text(encoding="utf-8"))]


def _param(path: Path):
    name = path.relative_to(ROOT).as_posix()
    marks = [pytest.mark.slow] if name in SLOW_PAGES else []
    return pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in pages()])
def test_every_python_block_of_the_page_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(ROOT))
    namespace = {"__name__": "__docs__"}
    started = time.process_time()
    for line, code in python_blocks(path.read_text(encoding="utf-8")):
        # Padding puts the block at its own lines of the page in a traceback.
        compiled = compile("\n" * (line - 1) + code, str(path), "exec")
        try:
            exec(compiled, namespace)
        except ModuleNotFoundError as err:
            top = (err.name or "").split(".")[0]
            if top not in OPTIONAL_MODULES:
                raise
            pytest.skip(f"{path.name}:{line} needs {top} (an optional extra), not installed")
    elapsed = time.process_time() - started
    budget = 60 if path.relative_to(ROOT).as_posix() in SLOW_PAGES else 15
    assert elapsed < budget, f"{path.name}'s blocks took {elapsed:.0f} s of CPU (budget {budget} s)"


def test_the_runner_finds_blocks_and_their_lines():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```py\ny = 2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, "y = 2\n")]


# --------------------------------------------------------------------------- generated tables


@pytest.fixture(scope="module")
def gen_tables():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_tables
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return gen_tables


def test_the_solver_tables_list_every_named_scheme(gen_tables):
    from sdekit.solvers import ODE_SOLVERS, SDE_SOLVERS

    sde, ode = gen_tables.sde_solver_table(), gen_tables.ode_solver_table()
    for name in SDE_SOLVERS:
        assert f"`{name}`" in sde
    for name in ODE_SOLVERS:
        assert f"`{name}`" in ode
    euler = next(row for row in sde.splitlines() if row.startswith("| `euler`"))
    assert "| 0.5 | 1 | 1 + 1 | no | none (fixed steps) |" in euler


def test_the_solver_table_reports_what_check_accepts(gen_tables):
    row = next(r for r in gen_tables.sde_solver_table().splitlines() if "`improved_euler`" in r)
    assert "Itô: additive; Stratonovich: diagonal, scalar, additive, general" in row
    assert "O(h) (O(h^1.5) additive)" in row


def test_the_sampler_table_evaluates_nfe_at_each_samplers_defaults(gen_tables):
    from sdekit_score.sampling.samplers import SAMPLERS

    table = gen_tables.sampler_table()
    for name in SAMPLERS:
        assert f"| `{name}` |" in table
    assert "`steps + 1` = 1001 at the defaults" in table
    assert "`(1 + corrector_steps) * steps + 1` = 2001 at the defaults" in table


def test_every_table_marker_in_the_docs_names_a_table(gen_tables):
    for path in (ROOT / "docs").rglob("*.md"):
        for name in re.findall(r"^<!-- table: ([a-z-]+) -->$", path.read_text(), re.MULTILINE):
            assert name in gen_tables.TABLES, f"{path.name}: unknown table {name!r}"


def test_every_page_of_the_docs_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for path in (ROOT / "docs").rglob("*.md"):
        assert path.relative_to(ROOT / "docs").as_posix() in nav, f"{path} is not in mkdocs.yml"


def test_the_api_reference_covers_both_packages_public_names():
    import types

    import sdekit
    import sdekit_score

    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE))
    missing = []
    for package in (sdekit, sdekit_score):
        for name in package.__all__:
            obj = getattr(package, name)
            if isinstance(obj, types.ModuleType):
                found = any(
                    d == obj.__name__ or d.startswith(obj.__name__ + ".") for d in documented
                )
            else:
                found = any(d.split(".")[-1] == name for d in documented)
            if not found:
                missing.append(f"{package.__name__}.{name}")
    assert not missing, f"not in docs/api/*.md: {missing}"

"""The packages' layers: imports only run downward (../docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A module of a layer may import from the layers listed for it (and from its own layer).
ALLOWED = {
    "sdekit": set(),
    "sdekit_score.sampling": {"sdekit"},
    "sdekit_score.training": {"sdekit", "sdekit_score.sampling"},
    "sdekit_score.evaluation": {"sdekit", "sdekit_score.sampling"},
    "sdekit_score.adapters": {"sdekit", "sdekit_score.sampling", "sdekit_score.training"},
    "sdekit_score.app": {
        "sdekit",
        "sdekit_score.sampling",
        "sdekit_score.training",
        "sdekit_score.evaluation",
    },
    # Sharded sampling sits on top, beside cli.py: nothing below imports it.
    "sdekit_score.distributed": {
        "sdekit",
        "sdekit_score.sampling",
        "sdekit_score.training",
        "sdekit_score.evaluation",
        "sdekit_score.app",
    },
}


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in ("sdekit", "sdekit_score")}


MODULES = sorted(p for pkg in ("sdekit", "sdekit_score") for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_run_downward(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    layer = _layer(module)
    if layer is None:  # sdekit_score/__init__.py and cli.py sit on top of everything
        return
    for name in _imports(path):
        target = _layer(name)
        assert target is None or target == layer or target in ALLOWED[layer], (
            f"{module} imports {name}: layer {layer} may import only from {sorted(ALLOWED[layer])}"
        )


def test_sdekit_never_imports_sdekit_score():
    for path in (ROOT / "sdekit").rglob("*.py"):
        assert not any(n.startswith("sdekit_score") for n in _imports(path)), path

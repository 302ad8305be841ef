"""The ``sdekit-score`` command on the base install: no matplotlib, no scikit-learn."""

import json
import subprocess
import sys

import torch

# Runs each argv through `main` in one process where matplotlib and scikit-learn cannot be imported,
# and prints [status, stdout, stderr] per argv as JSON.
BASE_INSTALL = """
import contextlib, io, json, sys
sys.modules["matplotlib"] = None
sys.modules["sklearn"] = None
from sdekit_score.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit:
            status = exit.code
    results.append([status, out.getvalue(), err.getvalue()])
assert "matplotlib.pyplot" not in sys.modules and "sklearn.datasets" not in sys.modules
print(json.dumps(results))
"""


def run_without_extras(*argvs, cwd):
    result = subprocess.run(
        [sys.executable, "-c", BASE_INSTALL, json.dumps([[str(a) for a in v] for v in argvs])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_help_train_and_sample_run_without_matplotlib_or_scikit_learn(tmp_path):
    train = ["train", "--data", "ring", "--steps", 3, "--width", 16, "--n-data", 64]
    sample = ["sample", "--checkpoint", "m", "--sampler", "em", "--option", "steps=5", "--n", 10]
    target = ["sample", "--target", "gmm2d", "--sampler", "em", "--option", "steps=5", "--n", 10]
    (help_status, help_out, _), trained, sampled, targeted = run_without_extras(
        ["--help"],
        [*train, "--batch-size", 32, "--no-progress", "--out", "m"],
        [*sample, "--no-progress", "--out", "s"],
        [*target, "--no-progress", "--out", "t"],
        cwd=tmp_path,
    )
    assert help_status == 0 and "train" in help_out and "sample" in help_out
    assert trained[0] == 0 and "trained 3 steps" in trained[1], trained
    note = "sdekit-score: note: no PNG pictures: they need matplotlib: pip install 'sdekit[plot]'\n"
    for status, out, err in (sampled, targeted):
        assert status == 0 and json.loads(out)["sampler"] == "em"
        assert err == note
    assert torch.load(tmp_path / "s" / "samples.pt", weights_only=True).shape == (10, 2)
    assert not (tmp_path / "s" / "samples.png").exists()


def test_the_digits_without_scikit_learn_are_a_one_line_error_naming_the_extra(tmp_path):
    [(status, out, err)] = run_without_extras(
        ["train", "--data", "digits", "--steps", 1, "--out", "m"], cwd=tmp_path
    )
    assert status == 1 and out == ""
    assert err == (
        "sdekit-score: error: loading the digits data needs scikit-learn: pip install 'sdekit[data]'\n"
    )

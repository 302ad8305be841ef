"""`sdekit-score sample` in chunks: the same samples on one process and on two (torchrun, gloo),
resumption after a killed rank or a damaged shard, refusal of a rerun with other arguments."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sdekit
import sdekit_score as ss
from sdekit_score import cli, distributed
from sdekit_score.app.demo import Run

# Six chunks of sixteen samples; about a third of a second per chunk on one core.
ARGS = ["sample", "--target", "gmm2d", "--sampler", "em", "--option", "steps=200"]
ARGS += ["--n", "96", "--chunk-size", "16", "--seed", "11", "--no-progress"]


def run(argv, capsys):
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def samples(out):
    return torch.load(out / "samples.pt", weights_only=True)


def stamps(out):
    """Inode and modification time of each shard: a shard made again gets new ones."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("shards/chunk_*")}


def torchrun(out, *extra):
    """``torchrun --standalone --nproc_per_node=2 -m sdekit_score.cli -- sample ... --distributed``
    (``--`` keeps torchrun's own parser from reading ``--n`` as one of its options)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "sdekit_score.cli", "--", *ARGS]
    return subprocess.Popen(
        [*command, *extra, "--out", str(out), "--distributed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run on one process, without --distributed."""
    out = tmp_path_factory.mktemp("whole")
    assert cli.main([*ARGS, "--out", str(out)]) == 0
    return out


def test_sample_writes_one_shard_per_chunk_and_the_stats_of_the_run(whole):
    stats = json.loads((whole / "stats.json").read_text())
    assert stats["chunk_size"] == 16 and stats["chunks_generated"] == 6
    assert stats["world_size"] == 1 and stats["samples_per_s"] > 0
    assert samples(whole).shape == (96, 2) and len(stamps(whole)) == 6
    assert (whole / "samples.png").exists()


def test_a_sample_does_not_depend_on_its_chunk(whole, tmp_path, capsys):
    status, _, err = run([*ARGS[:-1], "--chunk-size", 32, "--out", tmp_path], capsys)
    assert status == 0 and "chunks: 100%" in err and "samples/s" in err
    # The same per-sample generators; only batched kernels of another size may round otherwise.
    torch.testing.assert_close(samples(tmp_path), samples(whole), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_processes_write_the_samples_of_one(whole, tmp_path):
    job = torchrun(tmp_path)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert torch.equal(samples(tmp_path), samples(whole))
    one, two = (json.loads((o / "stats.json").read_text()) for o in (whole, tmp_path))
    assert two["world_size"] == 2 and two["nfe"] == one["nfe"] == 201
    assert two["distances"] == one["distances"] and (tmp_path / "samples.png").exists()


def _worker(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker of ``rank`` (a child of ``parent`` with ``RANK=rank``)."""
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker in /proc")
def test_a_killed_rank_loses_nothing_and_a_rerun_makes_each_missing_chunk_once(
    whole, tmp_path, capsys
):
    job = torchrun(tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not stamps(tmp_path) or (victim := _worker(job.pid, 1)) is None:
            assert job.poll() is None, job.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        victim_killed = time.monotonic()
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        job.communicate(timeout=60)
        assert job.returncode != 0 and time.monotonic() - victim_killed < 30
    finally:
        if job.poll() is None:
            job.send_signal(signal.SIGKILL)
            job.wait()
    before = stamps(tmp_path)
    assert 0 < len(before) < 6, before
    status, out, _ = run([*ARGS, "--out", tmp_path], capsys)  # resumed on one process
    assert status == 0 and json.loads(out)["chunks_generated"] == 6 - len(before)
    after = stamps(tmp_path)
    assert len(after) == 6 and all(after[name] == stamp for name, stamp in before.items())
    assert not list(tmp_path.glob("shards/.*.tmp"))
    assert torch.equal(samples(tmp_path), samples(whole))


def test_a_damaged_shard_is_made_again(whole, tmp_path, capsys):
    out = shutil.copytree(whole, tmp_path / "out")
    shard = out / "shards" / "chunk_000002.pt"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0x01
    shard.write_bytes(bytes(data))
    (out / "samples.pt").unlink()
    with pytest.warns(UserWarning, match=r"chunks 2 \(checksum mismatch\)"):
        status, stdout, _ = run([*ARGS, "--out", out], capsys)
    assert status == 0 and json.loads(stdout)["chunks_generated"] == 1
    assert torch.equal(samples(out), samples(whole))
    changed = {k for k, v in stamps(out).items() if stamps(whole)[k][1] != v[1]}
    assert changed == {"chunk_000002.pt"}


def test_a_rerun_with_other_arguments_is_refused(whole, tmp_path, capsys):
    out = shutil.copytree(whole, tmp_path / "out")
    argv = [*ARGS, "--out", out]
    argv[argv.index("--seed") + 1] = "12"
    status, stdout, err = run(argv, capsys)
    assert status == 2 and stdout == "" and err.count("\n") == 1
    assert "holds shards of another run" in err and "seed: 11 -> 12" in err
    assert torch.equal(samples(out), samples(whole)) and stamps(out).keys() == stamps(whole).keys()


def test_a_process_of_a_torchrun_job_needs_distributed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, _, err = run([*ARGS, "--out", tmp_path], capsys)
    assert status == 2 and "add --distributed" in err and not list(tmp_path.iterdir())


def test_a_chunk_that_spent_its_budget_names_the_runs_sample_and_a_larger_budget_resumes(
    tmp_path, monkeypatch
):
    # The failure asked for a larger max_steps, and a rerun with one was refused as "another
    # run" (delete the shards to start over); its sample index was the chunk's, not the run's.
    real = distributed.sample
    calls = []

    def budgeted(score_fn, process, shape, *, generator, max_steps, **options):
        calls.append(len(calls))
        if len(calls) == 3 and max_steps < 100:  # the third chunk's sample 1 needs 100 steps
            raise sdekit.SolveError(
                "max_steps reached (sample 1)", sdekit.Status.MAX_STEPS, sample=1
            )
        return real(score_fn, process, shape, generator=generator, **options)

    monkeypatch.setattr(distributed, "sample", budgeted)
    process = ss.VPSDE()
    args = dict(n=20, directory=tmp_path, seed=3, chunk_size=4, denoise=False)

    def draw(max_steps):
        run = Run("em", "em", {"steps": 5, "max_steps": max_steps})
        return distributed.draw(lambda x, t: -x, process, (2,), run, **args)

    with pytest.raises(
        sdekit.SolveError, match=r"chunk 2: its sample 1 is sample 9 of the run"
    ) as info:
        draw(50)
    assert info.value.sample == 9 and len(list(tmp_path.glob("chunk_*.pt"))) == 2
    x, _, report = draw(200)
    assert report.generated == (2, 3, 4) and x.shape == (20, 2)
    with pytest.raises(ValueError, match=r"throw: sharded sampling keeps whole chunks"):
        draw_run = Run("ggf", "ggf", {"throw": False})  # NaN rows would stay in the shards
        distributed.draw(lambda x, t: -x, process, (2,), draw_run, **args)
    with pytest.raises(Exception, match=r"holds shards of another run"):  # steps do count
        distributed.draw(lambda x, t: -x, process, (2,), Run("em", "em", {"steps": 6}), **args)


def test_the_samplers_default_start_is_part_of_the_run(tmp_path):
    # unipc starts centred unless told otherwise: shards of a run from the plain prior draw are
    # not those of the default run, and naming the default start resumes the default run.
    process = ss.VESDE()

    def draw(directory, **options):
        run = Run("unipc", "unipc", {"steps": 3, **options})
        score = lambda x, t: -x / process.sigma(t)[:, None] ** 2  # noqa: E731
        return distributed.draw(
            score, process, (2,), run, n=8, directory=directory, seed=3, chunk_size=4,
            denoise=False,
        )  # fmt: skip

    draw(tmp_path / "plain", init="prior")
    with pytest.raises(Exception, match=r"holds shards of another run"):
        draw(tmp_path / "plain")
    draw(tmp_path / "default")
    assert draw(tmp_path / "default", init="centred")[2].generated == ()

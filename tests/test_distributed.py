"""sdekit.distributed: chunks, shards, resumption and ranks (gloo on CPU, spawned processes)."""

import json
import os
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import sdekit as sk
from sdekit import distributed as skd

N, CHUNK, SEED = 40, 8, 5  # five chunks of eight paths


def ou_problem():
    """Ornstein–Uhlenbeck, dX = -X dt + 0.5 dW: every path is independent of the others."""
    return sk.SDE(drift=lambda t, y: -y, diffusion=lambda t, y: 0.5 * torch.ones_like(y))


def ensemble(directory, group=None, **overrides):
    kwargs = dict(n_paths=N, chunk_size=CHUNK, seed=SEED, solver="euler", dt=0.05)
    kwargs.update(overrides)
    return skd.solve_ensemble(
        ou_problem(), torch.ones(3), 0.0, 1.0, directory=directory, group=group, **kwargs
    )


def counting_job(calls, fail_at=None):
    """A job whose item ``i`` is ``i`` plus one normal draw from item ``i``'s generator."""

    def job(chunk):
        calls.append(chunk.index)
        if chunk.index == fail_at:
            raise KeyboardInterrupt("killed")
        noise = torch.stack([torch.randn((), generator=g) for g in chunk.generators()])
        return {"x": torch.arange(chunk.start, chunk.stop) + noise}

    return job


def run(directory, job, **overrides):
    kwargs = dict(n=N, chunk_size=CHUNK, seed=SEED, config={"name": "test"})
    kwargs.update(overrides)
    return skd.run_chunks(job, directory=directory, **kwargs)


# --------------------------------------------------------------------------- one process


def test_chunks_cover_every_item_once_and_seeds_depend_only_on_seed_and_item():
    parts = skd.chunks(10, 4, seed=3)
    assert [(c.start, c.stop) for c in parts] == [(0, 4), (4, 8), (8, 10)]
    assert [len(c) for c in parts] == [4, 4, 2]
    seeds = [skd.item_seed(3, i) for i in range(10)]
    assert len(set(seeds)) == 10 and seeds[1] != skd.item_seed(4, 0)
    first = [torch.randn(2, generator=g) for g in parts[1].generators()]
    again = [torch.randn(2, generator=g) for g in skd.chunks(10, 2, seed=3)[2].generators()]
    assert all(torch.equal(a, b) for a, b in zip(first[:2], again, strict=True))


def test_an_ensemble_equals_solve_with_one_generator_per_path_whatever_the_chunk_size(tmp_path):
    sol, report = ensemble(tmp_path / "a")
    assert sol.ys.shape == (1, N, 3) and report.chunks == 5 and report.generated == (0, 1, 2, 3, 4)
    assert torch.equal(sol.stats["nfe"], torch.full((N,), 40))
    generators = [torch.Generator().manual_seed(skd.item_seed(SEED, i)) for i in range(N)]
    y0 = torch.ones(N, 3)
    direct = sk.solve(ou_problem(), y0, 0.0, 1.0, solver="euler", dt=0.05, generator=generators)
    torch.testing.assert_close(sol.ys, direct.ys, rtol=1e-6, atol=1e-7)
    other, _ = ensemble(tmp_path / "b", chunk_size=16)
    torch.testing.assert_close(other.ys, sol.ys, rtol=1e-6, atol=1e-7)


def test_saveat_and_random_initial_states_drawn_from_each_paths_generator(tmp_path):
    def y0(m, generator):
        return sk.random.randn((m, 2), generator, torch.float32, torch.device("cpu"))

    sol, _ = skd.solve_ensemble(
        ou_problem(),
        y0,
        0.0,
        1.0,
        n_paths=12,
        chunk_size=5,
        seed=0,
        directory=tmp_path,
        solver="euler",
        dt=0.1,
        saveat=[0.0, 0.5, 1.0],
    )
    assert torch.equal(sol.ts, torch.tensor([0.0, 0.5, 1.0])) and sol.ys.shape == (3, 12, 2)
    first = torch.randn(2, generator=torch.Generator().manual_seed(skd.item_seed(0, 7)))
    assert torch.equal(sol.ys[0, 7], first)


def test_one_generator_per_chunk_gives_other_paths_but_the_same_for_any_world_size(tmp_path):
    sol, _ = ensemble(tmp_path / "a", per_path=False)
    generator = skd.chunks(N, CHUNK, SEED)[1].generator()
    y0 = torch.ones(CHUNK, 3)
    direct = sk.solve(ou_problem(), y0, 0.0, 1.0, solver="euler", dt=0.05, generator=generator)
    assert torch.equal(sol.ys[:, CHUNK : 2 * CHUNK], direct.ys)
    per_path, _ = ensemble(tmp_path / "b")
    assert not torch.equal(sol.ys, per_path.ys)


def test_a_rerun_after_a_crash_makes_only_the_missing_chunks(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed", counting_job(calls, fail_at=3))
    assert calls == [0, 1, 2, 3]
    calls.clear()
    tensors, infos, report = run(tmp_path / "crashed", counting_job(calls))
    assert calls == [3, 4] and report.generated == (3, 4) and report.damaged == ()
    whole, _, _ = run(tmp_path / "whole", counting_job([]))
    assert torch.equal(tensors["x"], whole["x"]) and len(infos) == 5
    calls.clear()
    assert run(tmp_path / "crashed", counting_job(calls))[2].generated == () and calls == []


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "a flipped byte": _flip_a_byte,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "another chunk's shard": lambda p: p.write_bytes(p.with_name("chunk_000001.pt").read_bytes()),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_shard_is_detected_and_made_again(damage, tmp_path):
    whole, _, _ = run(tmp_path, counting_job([]))
    DAMAGE[damage](tmp_path / "chunk_000002.pt")
    calls = []
    with pytest.warns(UserWarning, match=r"damaged shards .* chunks 2 "):
        tensors, _, report = run(tmp_path, counting_job(calls))
    assert calls == [2] and report.generated == (2,) and report.damaged == (2,)
    assert torch.equal(tensors["x"], whole["x"])


def test_the_temporary_file_of_a_killed_writer_is_never_read_and_is_removed(tmp_path):
    run(tmp_path, counting_job([]))
    (tmp_path / "chunk_000004.pt").rename(tmp_path / ".chunk_000004.pt.123.456.tmp")
    calls = []
    run(tmp_path, counting_job(calls))
    assert calls == [4] and not list(tmp_path.glob(".*.tmp"))


def test_a_rerun_with_other_arguments_is_refused_and_leaves_the_shards(tmp_path):
    run(tmp_path, counting_job([]))
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    for change, key in [({"seed": 6}, "seed: 5 -> 6"), ({"config": {"name": "x"}}, "job.name")]:
        with pytest.raises(skd.ConfigurationError, match=f"holds shards of another run .*{key}"):
            run(tmp_path, counting_job([]), **change)
    with pytest.raises(skd.ConfigurationError, match="holds shards of another run"):
        ensemble(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_integer_and_float_numbers_of_one_value_are_one_configuration(tmp_path):
    # t1=1 after t1=1.0 was refused as "another run ()", naming no difference
    first = run(tmp_path, counting_job([]), config={"t1": 1.0, "dt": 0.5})[0]
    calls = []
    again = run(tmp_path, counting_job(calls), config={"t1": 1, "dt": 0.5})[0]
    assert calls == [] and torch.equal(first["x"], again["x"])
    with pytest.raises(skd.ConfigurationError, match=r"another run \(job.dt: 0.5 -> 0.25\)"):
        run(tmp_path, counting_job([]), config={"t1": 1, "dt": 0.25})


def test_a_run_that_wrote_no_shard_does_not_block_a_corrected_rerun(tmp_path):
    def failing(chunk):
        raise RuntimeError("a typo in the job")

    with pytest.raises(RuntimeError, match="typo"):
        run(tmp_path, failing, seed=6)
    assert (tmp_path / "manifest.json").exists() and not list(tmp_path.glob("chunk_*.pt"))
    whole, _, _ = run(tmp_path, counting_job([]))  # another configuration: the manifest is replaced
    again, _, _ = run(tmp_path / "fresh", counting_job([]))
    assert torch.equal(whole["x"], again["x"])


def test_the_job_must_return_one_row_per_item(tmp_path):
    with pytest.raises(sk.InputValueError, match="first axis is the chunk's 8 items"):
        run(tmp_path, lambda chunk: {"x": torch.zeros(3)})


def test_a_solve_ensemble_names_a_y0_function_that_returns_another_count(tmp_path):
    # the solve's message spoke of generators per sample
    with pytest.raises(sk.InputValueError, match=r"y0\(m, generator\) must return .* m = 8"):
        skd.solve_ensemble(
            ou_problem(), lambda m, generator: torch.zeros(m + 1, 3), 0.0, 1.0, n_paths=N,
            chunk_size=CHUNK, seed=SEED, solver="euler", dt=0.05, directory=tmp_path,
        )  # fmt: skip


def test_a_solve_ensemble_refuses_a_generator(tmp_path):
    with pytest.raises(sk.InputValueError, match="pass seed=..., not generator"):
        ensemble(tmp_path, generator=0)


def test_describe_names_functions_hashes_tensors_and_modules():
    net = torch.nn.Linear(2, 2)
    description = skd.describe({"f": ou_problem, "y": torch.ones(2), "net": net, "k": (1, "a")})
    assert description["f"] == f"{__name__}.ou_problem"
    assert description["y"]["sha256"] == skd.describe(torch.ones(2))["sha256"]
    assert description["y"]["sha256"] != skd.describe(torch.zeros(2))["sha256"]
    assert description["net"]["module"] == "torch.nn.modules.linear.Linear"
    assert description["k"] == [1, "a"]
    with torch.no_grad():
        net.weight += 1
    assert skd.describe(net)["sha256"] != description["net"]["sha256"]


# --------------------------------------------------------------------------- several processes


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world_size, port, target, args, errors):
    """One spawned rank, with the environment torchrun would give it; an exception is written to
    ``errors / f"{rank}.json"``."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        target(rank, *args)
    except BaseException as err:
        (errors / f"{rank}.json").write_text(json.dumps([type(err).__name__, str(err)]))
        raise SystemExit(1) from None


def spawn(target, *args, world_size=2, timeout=60):
    """Run ``target(rank, *args)`` on ``world_size`` spawned ranks: (exit codes, the ranks'
    errors as ``{rank: (type name, message)}``, seconds until the last one exited)."""
    context = mp.get_context("forkserver")  # fresh processes, forked from a preloaded server
    context.set_forkserver_preload(["torch", "sdekit", "pytest"])
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        errors = Path(folder)
        processes = [
            context.Process(target=_rank, args=(r, world_size, port, target, args, errors))
            for r in range(world_size)
        ]
        start = time.monotonic()
        for p in processes:
            p.start()
        for p in processes:
            p.join(timeout=max(0.1, timeout - (time.monotonic() - start)))
        seconds = time.monotonic() - start
        for p in processes:
            if p.is_alive():
                p.kill()
        found = {int(f.stem): tuple(json.loads(f.read_text())) for f in errors.glob("*.json")}
    assert all(p.exitcode is not None for p in processes), f"still running after {timeout} s"
    return [p.exitcode for p in processes], found, seconds


def _ensemble_rank(rank, directory, result, seed):
    with skd.init(dead_after=5) as group:
        out = ensemble(directory, group, seed=seed)
        assert (out is None) == (rank != 0)
        if out is not None:
            sol, report = out
            torch.save({"ys": sol.ys, "nfe": sol.stats["nfe"], "ranks": report.world_size}, result)


@pytest.mark.slow
def test_two_processes_give_the_paths_of_one(tmp_path):
    codes, errors, _ = spawn(_ensemble_rank, tmp_path / "two", tmp_path / "two.pt", SEED)
    assert codes == [0, 0], errors
    two = torch.load(tmp_path / "two.pt")
    one, _ = ensemble(tmp_path / "one")
    assert two["ranks"] == 2 and torch.equal(two["ys"], one.ys)
    assert torch.equal(two["nfe"], one.stats["nfe"])
    shards = sorted((tmp_path / "two").glob("chunk_*"))
    infos = [skd.load_shard(p)["meta"]["info"]["rank"] for p in shards]
    assert infos == [0, 1, 0, 1, 0]


def _mismatched_rank(rank, directory):
    with skd.init(timeout=30) as group:
        ensemble(directory, group, seed=SEED + rank)


@pytest.mark.slow
def test_ranks_started_with_different_arguments_all_stop_with_the_same_message(tmp_path):
    codes, errors, seconds = spawn(_mismatched_rank, tmp_path, timeout=60)
    assert codes == [1, 1] and seconds < 30
    for rank, other in [(0, 1), (1, 0)]:
        kind, message = errors[rank]
        assert kind == "ConfigurationError", errors[rank]
        assert f"rank {other} against rank {rank}" in message and "seed" in message
    assert not list(tmp_path.glob("chunk_*"))


def _slow_job(rank, victim):
    def job(chunk):
        if rank == victim and chunk.index == 2 + victim:  # the victim's second chunk
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.3 if rank == victim else 0.6)
        return {"x": torch.full((len(chunk),), float(chunk.index))}

    return job


def _killed_rank(rank, directory, victim):
    with skd.init(dead_after=2) as group:
        run(directory, _slow_job(rank, victim), n=64, group=group)


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["rank 1 killed", "rank 0 killed"])
def test_a_killed_rank_stops_the_other_with_a_message_and_a_rerun_completes(victim, tmp_path):
    codes, errors, seconds = spawn(_killed_rank, tmp_path, victim, timeout=60)
    survivor = 1 - victim
    assert codes[victim] == -signal.SIGKILL and codes[survivor] == 1
    kind, message = errors[survivor]
    assert kind == "DistributedError", errors[survivor]
    expected = "rank 1 stopped responding" if victim == 1 else "rank 0 probably died"
    assert expected in message and "rerun the same command to resume" in message
    assert seconds < 20  # dead_after 2 s, chunks of 0.6 s
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.glob("chunk_*")}
    assert f"chunk_{victim:06d}.pt" in before and f"chunk_{2 + victim:06d}.pt" not in before
    calls = []

    def job(chunk):
        calls.append(chunk.index)
        return {"x": torch.full((len(chunk),), float(chunk.index))}

    tensors, _, report = run(tmp_path, job, n=64)
    missing = sorted(set(range(8)) - {int(name[6:12]) for name in before})
    assert calls == missing and list(report.generated) == missing
    assert torch.equal(tensors["x"], torch.arange(8.0).repeat_interleave(CHUNK))
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.glob("chunk_*")}
    assert all(after[name] == stamp for name, stamp in before.items())  # none made twice

"""Sampling throughput on 1 and 2 processes (torchrun, gloo, one CPU thread each).

A score model whose evaluation dominates (an untrained MLP score network, 64 dimensions, width
1024, 3 layers, seeded) sampled with Euler–Maruyama (100 steps) by ``sdekit_score.distributed.draw``
in chunks of 32, under ``torchrun --standalone --nproc_per_node=W`` for each W. Prints one table:
samples per second while generating (rank 0's count of all ranks' samples over the generation
time), the speed-up over one process, samples per CPU-second of all ranks together (what the
ranks cost, whatever else runs on the machine), the wall time of the whole launch (Python and
torch start-up included); checks that every world size wrote the same samples.

    python bench/distributed.py [--n 384] [--worlds 1,2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DIM, WIDTH, DEPTH, STEPS, CHUNK = 64, 1024, 3, 100, 32


def worker(n: int, out: Path) -> None:
    """One rank: sample ``n`` points into ``out``; each rank writes the CPU seconds it spent
    sampling to ``cpu_RANK.json``, rank 0 also its report to ``report.json``."""
    from sdekit_score.app.demo import Run
    from sdekit_score.distributed import draw, launch
    from sdekit_score.sampling.processes import VPSDE
    from sdekit_score.sampling.scores import ScoreModel
    from sdekit_score.training.nets import MLP

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ScoreModel(MLP(DIM, hidden=WIDTH, depth=DEPTH), VPSDE(), conditioning="999t").eval()
    with launch("cpu", distributed=True) as group:
        run = Run("em", "em", {"steps": STEPS})
        shards = out / "shards"
        cpu = time.process_time()
        drawn = draw(
            model, model.process, (DIM,), run, n=n, directory=shards, chunk_size=CHUNK, group=group
        )
        cpu = time.process_time() - cpu
        (out / f"cpu_{group.rank}.json").write_text(json.dumps(cpu))
    if drawn is not None:
        samples, _, report = drawn
        torch.save(samples, out / "samples.pt")
        result = {"world_size": report.world_size, "samples_per_s": report.items_per_s}
        (out / "report.json").write_text(json.dumps(result))


def launch_world(world_size: int, n: int, out: Path) -> dict:
    """Run the workers under torchrun; rank 0's report plus the launch's wall time."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={world_size}", __file__, "--", "--worker", "--n", str(n)]
    start = time.perf_counter()
    subprocess.run(
        [*command, "--out", str(out)], check=True, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    wall = time.perf_counter() - start
    cpu = sum(json.loads(f.read_text()) for f in out.glob("cpu_*.json"))
    return json.loads((out / "report.json").read_text()) | {"wall_s": wall, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=384, help="samples per run (default 384)")
    parser.add_argument("--worlds", default="1,2", help="world sizes (default 1,2)")
    parser.add_argument("--out", type=Path, default=None, help="also write distributed.json here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.n, args.out)
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for world_size in map(int, args.worlds.split(",")):
            out = Path(folder) / f"w{world_size}"
            rows.append(launch_world(world_size, args.n, out))
            rows[-1]["same_samples"] = torch.equal(
                torch.load(out / "samples.pt"), torch.load(Path(folder) / "w1" / "samples.pt")
            )
    base = rows[0]["samples_per_s"]
    print(f"{args.n} samples, EM {STEPS} steps, MLP {DIM}-{WIDTH}x{DEPTH}, chunks of {CHUNK}")
    print("processes  samples/s  speed-up  samples/CPU-s  wall s (launch)  same samples")
    for row in rows:
        print(
            f"{row['world_size']:>9}  {row['samples_per_s']:>9.1f}  "
            f"{row['samples_per_s'] / base:>7.2f}x  {args.n / row['cpu_s']:>13.1f}  "
            f"{row['wall_s']:>15.1f}  {row['same_samples']}"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "distributed.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

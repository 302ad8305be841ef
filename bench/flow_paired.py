"""Deterministic samplers' discretisation error, paired: each run against the converged flow from
the same prior draws.

A probability-flow sampler is a deterministic map of its prior draws, so the ΔNLL of one run (see
``bench/samplers.py``: mean NLL of the denoised samples under the true mixture, minus that of exact
``p_eps`` samples) carries those draws' sampling noise (standard error about 0.005–0.01 nats per run
of 10000 samples in 2-D), which hides differences of a few thousandths between samplers. Here every
run starts from the plain prior draw of its seed (``init="prior"`` for ours; ``ss.sample`` and
``bench/kdiffusion.py`` draw the same ``x_T`` for a seed), and its error is its ΔNLL minus that of
the converged flow on the same draws (``dpmpp_3m`` with ``--converged-steps`` steps; both libraries
solve the same ODE). The table gives the mean paired error over seeds with its standard error, and
the NFE per sample (including the denoising evaluation).

Rows: ours ``dpmpp_2m``, ``dpmpp_3m`` and ``unipc`` at ``--steps`` on the uniform log-SNR grid
(their default) and on ``"logsnr_power"``, ours ``dpm_adaptive`` (per sample and shared) and
k-diffusion's ``sample_dpm_adaptive`` at the tolerances of ``bench/samplers.py``.

    python bench/flow_paired.py --out DIR --kdiffusion PATH [--dims 2] [--processes vp ve]
                                [--seeds 0 1 2 3 4 5 6 7] [--steps 49 54] [--no-kdiffusion]
                                [--only SAMPLER ...]

Prints one table; writes ``flow_paired.json`` and ``flow_paired.md`` into ``--out`` only.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import sdekit_score as ss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kdiffusion  # noqa: E402  (bench/kdiffusion.py)
import samplers as bench  # noqa: E402  (bench/samplers.py: targets, references, runs)

COLUMNS = ["dim", "process", "sampler", "setting", "NFE", "paired error", "±"]
PLAIN = {"init": "prior"}  # the converged flow's start, and k-diffusion's


def rows_to_run(steps, kd) -> list[tuple[str, str, tuple]]:
    """(sampler, setting, how) for every row."""
    runs = [
        (name, f"{n} steps, {schedule}", ("ours", name, dict(steps=n, schedule=schedule, **PLAIN)))
        for name in ("dpmpp_2m", "dpmpp_3m", "unipc")
        for n in steps
        for schedule in ("logsnr", "logsnr_power")
    ]
    for setting, options in bench._config_dpm_adaptive(None, None, False):
        options = dict(options, **PLAIN)
        runs.append(("dpm_adaptive", setting, ("ours", "dpm_adaptive", options)))
        shared = dict(options, per_sample=False)
        runs.append(("dpm_adaptive", f"{setting}, shared", ("ours", "dpm_adaptive", shared)))
    if kd is not None:
        for setting, options in bench._config_dpm_adaptive(None, None, False):
            runs.append(("kd dpm_adaptive", setting, ("kd", "sample_dpm_adaptive", options)))
    return runs


def run_block(dim: int, kind: str, args, kd) -> list[dict]:
    process = ss.VPSDE() if kind == "vp" else ss.VESDE()
    mixture = bench.make_target(dim, process)
    batch = args.batch
    ref_raw, ref_den = bench.exact_samples(mixture, process, 4 * batch, 10_000 + args.seeds[0])
    refs = {"raw": bench.Reference(mixture, ref_raw), "den": bench.Reference(mixture, ref_den)}

    def run(how, seed):
        if how[0] == "ours":
            return bench.run_one(mixture, process, how[1], dict(how[2]), batch, seed, refs)
        return bench.run_kdiffusion(mixture, process, kd, how[1], dict(how[2]), batch, seed, refs)

    converged = ("ours", "dpmpp_3m", {"steps": args.converged_steps})
    flow = [run(converged, seed)["dnll"] for seed in args.seeds]
    block = []
    for sampler, setting, how in rows_to_run(args.steps, kd):
        if args.only and sampler not in args.only:
            continue
        runs = [run(how, seed) for seed in args.seeds]
        errors = [r["dnll"] - f for r, f in zip(runs, flow, strict=True)]
        se = statistics.stdev(errors) / math.sqrt(len(errors)) if len(errors) > 1 else math.nan
        row = dict(
            dim=dim,
            process=kind,
            sampler=sampler,
            setting=setting,
            nfe=statistics.mean(r["nfe"] for r in runs),
            error=statistics.mean(errors),
            se=se,
            per_seed=errors,
        )
        block.append(row)
        print(
            f"  {dim}-D {kind} {sampler} {setting}: NFE {row['nfe']:.1f}, "
            f"error {row['error']:+.4f} ± {se:.4f}",
            file=sys.stderr,
            flush=True,
        )
    return block


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    parser.add_argument("--dims", type=int, nargs="+", default=[2])
    parser.add_argument("--processes", nargs="+", default=["vp", "ve"], choices=["vp", "ve"])
    parser.add_argument("--batch", type=int, default=10000, help="samples per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[49, 54], help="steps of the multistep samplers"
    )
    parser.add_argument("--converged-steps", type=int, default=399)
    parser.add_argument("--only", nargs="+", help="run only these samplers' rows")
    kdiffusion.add_arguments(parser)
    args = parser.parse_args(argv)
    kd = kdiffusion.sampling_from_arguments(parser, args)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = [
        row
        for dim in args.dims
        for kind in args.processes
        for row in run_block(dim, kind, args, kd)
    ]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        f"| {r['dim']} | {r['process']} | {r['sampler']} | {r['setting']} | {r['nfe']:.1f} "
        f"| {r['error']:+.4f} | {r['se']:.4f} |"
        for r in results
    ]
    footer = (
        f"{len(args.seeds)} seeds, {args.batch} samples per run, error against dpmpp_3m with "
        f"{args.converged_steps} steps; {(time.perf_counter() - started) / 60:.1f} min, one thread"
    )
    print("\n".join(lines + ["", footer]))
    (args.out / "flow_paired.md").write_text("\n".join(lines + ["", footer]) + "\n")
    (args.out / "flow_paired.json").write_text(
        json.dumps(dict(argv=sys.argv, rows=results), indent=1)
    )


if __name__ == "__main__":
    main()

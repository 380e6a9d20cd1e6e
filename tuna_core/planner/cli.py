"""`python -m tuna_core plan`: profile, fit and recommend a memory method for a budget.

    python -m tuna_core plan --preset tiny --task train --budget 512MiB --out docs/memory
    python -m tuna_core plan --preset tuna-1.5b --task t2i --budget 24GiB --device cuda --json
    python -m tuna_core plan --preset tuna-7b --task t2i --budget 16GiB --estimate T4   # no GPU needed

The table goes to stdout (with --json, only the JSON object does), the progress bar to stderr,
and OUT/plan_<preset>_<task>_<device>.{png,json,txt,csv} are written (csv: every run). Each run is
also kept in OUT/plan_<preset>_<task>_<device>.runs.jsonl the moment it finishes, and `--resume`
reuses those, so a plan cut short by a timeout or a lease that ends continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from tuna_core.config import PRESETS
from tuna_core.planner.estimate import SPACES_GPUS
from tuna_core.planner.fit import parse_bytes
from tuna_core.planner.plan import PlanConfig, estimated_plan, make_plan, plot_plan


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"batch sizes are comma-separated integers such as 1,2,4,8; got {text!r}"
        ) from None


def _budget(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tuna_core plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="tiny")
    p.add_argument("--task", choices=("train", "t2i", "chat"), default="train")
    p.add_argument("--budget", type=_budget, required=True, help="memory budget, e.g. 16GiB, 512MiB, 8GB")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--out", type=Path, default=Path("runs/plan"), help="folder for the plot, JSON and table")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=None, help="e.g. 1,2,4,6,8 (≥ 4; every other held out)")
    p.add_argument("--methods", default=None, help="comma-separated subset, e.g. none,ckpt (default: all that apply)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (the median is used)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--threads", type=int, default=1, help="torch threads per profiling run")
    p.add_argument("--sampling-steps", type=int, default=None, help="t2i ODE steps (default: the model's)")
    p.add_argument("--new-tokens", type=int, default=16, help="chat: tokens decoded per answer")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the runs in OUT/plan_*.runs.jsonl (every run is kept there as it finishes)",
    )
    p.add_argument("--measure-limit", type=int, default=64, help="largest b_max that is run for real")
    p.add_argument(
        "--estimate",
        choices=[g.name.split()[0] for g in SPACES_GPUS],
        default=None,
        help="no profiling: the analytic estimate for this GPU (labelled as such)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.estimate is None and torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here; run the plan on a GPU machine", file=sys.stderr)
        return 2
    try:
        cfg = _config(args)
    except ValueError as err:
        parser.error(str(err))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.estimate is not None:
        gpu = next(g for g in SPACES_GPUS if g.name.startswith(args.estimate))
        plan = estimated_plan(cfg, gpu)
        stem = f"estimate_{cfg.preset}_{cfg.task}_{args.estimate}"
    else:
        stem = f"plan_{cfg.preset}_{cfg.task}_{torch.device(cfg.device).type}"
        journal = args.out / f"{stem}.runs.jsonl"
        if not args.resume:
            journal.unlink(missing_ok=True)
        plan = make_plan(cfg, journal=journal)
        plot_plan(plan, args.out / f"{stem}.png")
        (args.out / f"{stem}.csv").write_text(plan.measurements_csv())
    result = plan.to_json()
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.txt").write_text(plan.table() + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(plan.table())
        print(f"\nwrote {args.out / stem}.*")
    return 0


def _config(args: argparse.Namespace) -> PlanConfig:
    return PlanConfig(
        preset=args.preset,
        task=args.task,
        device="cuda" if args.estimate else args.device,
        budget_bytes=args.budget,
        batch_sizes=args.batch_sizes,
        methods=tuple(args.methods.split(",")) if args.methods else None,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        sampling_steps=args.sampling_steps,
        new_tokens=args.new_tokens,
        measure_limit=args.measure_limit,
    )

"""`python -m tuna_core`: the four tasks, batch runs, training, evaluation, planning, benchmarks.

Every model command takes `--model DIR` (default: the bundled checkpoint) or `--preset NAME`
(random weights, said so on stderr) and `--device`. Bad input exits non-zero with one line on
stderr — never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tuna_core.config import BUNDLED_MODEL, PRESETS, TASK_GROUPS, Limits, ModelConfig, TrainConfig

Handler = Callable[[argparse.Namespace], int]


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help=f"checkpoint folder (default: {BUNDLED_MODEL})")
    p.add_argument("--preset", choices=PRESETS, default=None, help="random-weight model of these shapes instead")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 …")
    p.add_argument(
        "--engine",
        choices=("auto", "tensorrt", "compile", "eager"),
        default="auto",
        help="back-end of the VAE encoder/decoder and visual encoder (auto: tensorrt → torch.compile → eager)",
    )


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")


def _number_in(low: float, high: float, cast: type = float) -> Callable[[str], float]:
    """An argparse type for a setting within [low, high], checked before a long run starts."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            kind = "an integer" if cast is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind} in [{low}, {high}], got {text!r}")
        return value

    return parse


_guidance = _number_in(Limits.min_guidance, Limits.max_guidance)
_candidates = _number_in(1, Limits.max_candidates, int)


def _candidates_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--candidates", type=_candidates, default=None, help=help)


def _think_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--think",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="edits: say what the result shows, then draw that (default: the model's; --no-think draws directly)",
    )


def _batch_sizes(text: str) -> dict[str, int]:
    """`t2i=32,qa=8`: micro-batch sizes for some tasks; the recipe's sizes stay for the others."""
    sizes = {}
    for item in text.split(","):
        task, _, size = item.partition("=")
        if not size.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected TASK=SIZE[,TASK=SIZE…] like t2i=32,qa=8, got {item!r}")
        sizes[task.strip()] = int(size)
    return sizes


def load_pipeline(args: argparse.Namespace):
    """The pipeline for --model/--preset; the bundled checkpoint when neither is given."""
    from engines import build_units
    from tuna_core.pipeline import TunaPipeline

    if args.preset is not None and args.model is None:
        print(f"note: {args.preset} has random weights; outputs are noise, not Shapes World", file=sys.stderr)
        pipe = TunaPipeline.from_pretrained(preset=args.preset, device=args.device)
    else:
        folder = args.model or BUNDLED_MODEL
        if not (folder / "config.json").exists():
            hint = " (the bundled model is not trained yet: pass --preset tiny)" if args.model is None else ""
            raise ValueError(f"no TUNA checkpoint at {folder}{hint}")
        pipe = TunaPipeline.from_pretrained(folder, device=args.device)
    pipe.units = build_units(pipe.model, backend=args.engine)
    return pipe


def _progress(desc: str):
    """A tqdm bar on stderr driven by the pipeline's (step, total) callback."""
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(step: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
        bar["bar"].update(step - bar["bar"].n)

    return update


def cmd_generate_image(args: argparse.Namespace) -> int:
    from tuna_core.media import save_png

    pipe = load_pipeline(args)
    size = args.size or pipe.config.image_size
    result = pipe.text_to_image(
        args.prompt,
        args.negative_prompt,
        args.seed,
        args.steps,
        args.guidance,
        size,
        size,
        args.num_images,
        args.candidates,
        progress=_progress("t2i"),
    )
    for i, image in enumerate(result.images):
        out = args.out if len(result.images) == 1 else args.out.with_stem(f"{args.out.stem}-{i}")
        save_png(image, out, result.settings | {"index": i})
        print(out)
    return 0


def cmd_generate_video(args: argparse.Namespace) -> int:
    from tuna_core.media import save_mp4

    pipe = load_pipeline(args)
    result = pipe.text_to_video(
        args.prompt,
        args.seed,
        args.steps,
        args.guidance,
        args.frames,
        args.fps,
        args.candidates,
        progress=_progress("t2v"),
    )
    print(save_mp4(result.frames, args.out, result.fps, result.settings))
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from tuna_core.media import load_image, save_png

    pipe = load_pipeline(args)
    image = load_image(args.image, pipe.limits)
    result = pipe.edit(
        image,
        args.instruction,
        args.seed,
        args.steps,
        args.guidance,
        args.image_guidance,
        args.candidates,
        _progress("edit"),
        think=args.think,
    )
    if "thought" in result.settings:
        print(f"thought: {result.settings['thought']}", file=sys.stderr)
    print(save_png(result.images[0], args.out, result.settings))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from tuna_core.media import load_image, load_video

    pipe = load_pipeline(args)
    images = [load_image(args.image, pipe.limits)] if args.image else None
    videos = [load_video(args.video, pipe.limits)[0]] if args.video else None
    print(pipe.chat([{"role": "user", "content": args.question}], images=images, videos=videos))
    return 0


def cmd_run_batch(args: argparse.Namespace) -> int:
    from tuna_core.batch import run_batch

    pipe = load_pipeline(args)
    results = run_batch(pipe, args.input, args.out_dir)
    failed = sum("error" in r for r in results)
    print(f"{len(results) - failed} done, {failed} failed → {args.out_dir / 'results.jsonl'}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from tuna_core.checkpoint import parameter_counts
    from tuna_core.model import TunaModel

    if args.model is not None or args.preset is None:
        folder = args.model or BUNDLED_MODEL
        config = ModelConfig.load(folder / "config.json") if (folder / "config.json").exists() else None
        if config is None:
            raise ValueError(f"no TUNA checkpoint at {folder}; pass --preset {'|'.join(PRESETS)}")
        source = str(folder)
    else:
        config, source = ModelConfig.preset(args.preset), f"preset {args.preset}"
    with torch.device("meta"):  # shapes only: a 7B model costs no memory here
        model = TunaModel(config)
    counts = parameter_counts(model)
    if args.json:
        print(json.dumps({"model": config.name, "source": source, "parameters": counts}))
        return 0
    print(f"{config.name}  ({source})")
    for part, n in counts.items():
        print(f"  {part:<12} {n:>15,}  ({n / 1e6:,.1f} M)")
    print(f"  {'total':<12} {sum(counts.values()):>15,}  ({sum(counts.values()) / 1e9:,.3f} B)")
    side = config.image_size
    tokens = config.num_visual_tokens(1, side, side)
    print(f"  {side}×{side} image → latent {config.latent_grid(1, side, side)} → {tokens} visual tokens")
    return 0


def train_configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """The model and recipe a `train` command line asks for: the defaults plus its flags."""
    overrides = {
        k: v
        for k, v in (
            ("steps", args.steps),
            ("vae_steps", args.vae_steps),
            ("seed", args.seed),
            ("lr", args.lr),
            ("mixed_precision", args.mixed_precision),
            ("follow_ups", args.follow_ups),
            ("edit_change_weight", args.edit_change_weight),
            ("time_shift", args.time_shift),
        )
        if v is not None
    }
    if args.batch:
        overrides["batch"] = TrainConfig().batch | args.batch
    cfg = dataclasses.replace(TrainConfig(), tasks=TASK_GROUPS[args.tasks], **overrides)
    model_config = dataclasses.replace(ModelConfig.preset(args.preset), representation=args.representation)
    return model_config, cfg


def cmd_train(args: argparse.Namespace) -> int:
    from tuna_core.train.common import flush_denormals

    flush_denormals()  # first, before any import or op starts the CPU thread pool
    from tuna_core.train.joint import train_joint
    from tuna_core.train.vae import train_vae

    model_config, cfg = train_configs(args)
    args.out.mkdir(parents=True, exist_ok=True)
    memory_method = None
    if args.memory_budget:
        from tuna_core.planner import method_for_training

        memory_method = method_for_training(args.preset, args.memory_budget, args.device)
    stage1 = args.stage1 or args.out  # the ablations share one VAE and latent cache
    vae = train_vae(model_config, cfg, stage1)
    final = train_joint(
        model_config, cfg, args.out, vae, cache_dir=stage1 / "cache", memory_method=memory_method, init=args.init
    )
    print(final)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tuna_core.eval.evaluate import METRICS, evaluate, format_table

    pipe = load_pipeline(args)
    overrides = {
        "guidance": args.guidance,
        "image_guidance": args.image_guidance,
        "steps": args.steps,
        "time_shift": args.time_shift,
        "image_candidates": args.candidates,
        "video_candidates": args.candidates,
        "edit_candidates": args.candidates,
        "edit_think": args.think,
    }
    pipe.defaults = dataclasses.replace(pipe.defaults, **{k: v for k, v in overrides.items() if v is not None})
    metrics = tuple(args.metrics) if args.metrics else METRICS
    report = evaluate(pipe, n=args.n, seed=args.seed, metrics=metrics, contact_sheet=args.sheet)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def cmd_ablations(args: argparse.Namespace) -> int:
    from tuna_core.eval.ablations import format_ablations, plot_ablations, score_run

    scores = [score_run(run, n=args.n, seed=args.seed) for run in args.runs]
    print(format_ablations(scores))
    if args.json:
        args.json.write_text(json.dumps(scores, indent=2) + "\n")
    if args.plot:
        plot_ablations(scores, args.plot)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tuna_core.bench import run_bench

    run_bench(load_pipeline(args), runs=args.runs, write=args.write)
    return 0


def cmd_plan(argv: Sequence[str]) -> int:
    from tuna_core.planner.cli import main as plan_main

    return plan_main(list(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tuna_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate-image", help="text → PNG (settings in its text chunks)")
    _model_args(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    _sampling_args(p)
    p.add_argument("--size", type=int, default=None, help="square side in pixels (default: the model's)")
    p.add_argument("--num-images", type=int, default=1)
    _candidates_arg(p, "self-check: draw this many per image, keep the best (default: the model's)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=cmd_generate_image)

    p = sub.add_parser("generate-video", help="text → H.264 MP4")
    _model_args(p)
    p.add_argument("--prompt", required=True)
    _sampling_args(p)
    p.add_argument("--frames", type=int, default=None, help="4k+1 frames (default: the model's)")
    p.add_argument("--fps", type=int, default=None)
    _candidates_arg(p, "self-check: draw this many clips, keep the best (default: the model's)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=cmd_generate_video)

    p = sub.add_parser("edit", help="image + instruction → PNG")
    _model_args(p)
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--instruction", required=True)
    _sampling_args(p)
    p.add_argument(
        "--image-guidance", type=float, default=None, help="how closely to keep the source (1: plain guidance)"
    )
    _candidates_arg(
        p,
        "self-check: draw this many and keep the closest to the thought (without thinking: draw "
        "again while the result changes nothing, up to this many draws)",
    )
    _think_arg(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=cmd_edit)

    p = sub.add_parser("ask", help="answer a question about an image or a video (answer alone on stdout)")
    _model_args(p)
    media = p.add_mutually_exclusive_group(required=True)
    media.add_argument("--image", type=Path)
    media.add_argument("--video", type=Path)
    p.add_argument("--question", required=True)
    p.set_defaults(handler=cmd_ask)

    p = sub.add_parser("run-batch", help="many tasks from a JSONL file, one model load")
    _model_args(p)
    p.add_argument("input", type=Path)
    p.add_argument("out_dir", type=Path)
    p.set_defaults(handler=cmd_run_batch)

    p = sub.add_parser("info", help="parameter counts per part")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--preset", choices=PRESETS, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("train", help="train a preset on Shapes World (VAE stage, then joint)")
    p.add_argument("--preset", choices=PRESETS, default="tiny")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=None, help=f"joint steps (default {TrainConfig.steps})")
    p.add_argument("--vae-steps", type=int, default=None, help=f"VAE steps (default {TrainConfig.vae_steps})")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--tasks", choices=TASK_GROUPS, default="all", help="train all tasks, or one side (ablation)")
    p.add_argument(
        "--representation",
        choices=("unified", "decoupled"),
        default="unified",
        help="decoupled: generation bypasses the representation encoder (ablation)",
    )
    p.add_argument("--lr", type=float, default=None, help=f"joint peak learning rate (default {TrainConfig.lr})")
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "no", "bf16"),
        default=None,
        help="joint stage autocast (default auto: bf16 on CUDA, float32 on CPU)",
    )
    p.add_argument(
        "--follow-ups",
        type=float,
        default=None,
        metavar="P",
        help=f"share of QA and caption samples that follow earlier chat turns (default {TrainConfig.follow_ups})",
    )
    p.add_argument(
        "--edit-change-weight",
        type=float,
        default=None,
        metavar="W",
        help="latent positions an edit changes count 1 + W times in its flow loss "
        f"(default {TrainConfig.edit_change_weight}: plain MSE)",
    )
    p.add_argument(
        "--time-shift",
        type=_number_in(Limits.min_time_shift, Limits.max_time_shift),
        default=None,
        help="flow time shift of the training draws (default: the model's for each span's size)",
    )
    p.add_argument(
        "--batch",
        type=_batch_sizes,
        default=None,
        metavar="TASK=SIZE,…",
        help=f"micro-batch sizes per step for some tasks (default {TrainConfig().batch})",
    )
    p.add_argument("--stage1", type=Path, default=None, help="reuse this run's VAE and latent cache (ablations)")
    p.add_argument(
        "--init", type=Path, default=None, help="start the joint stage from this checkpoint's weights (fresh optimizer)"
    )
    p.add_argument("--memory-budget", default=None, help="e.g. 8GiB: apply the planner's recommended method")
    p.add_argument("--device", default="cpu", help="device the memory budget refers to")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("eval", help="Shapes World accuracy on fresh scenes")
    _model_args(p)
    p.add_argument("--n", type=int, default=100, help="examples per task")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (never used in training)")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--sheet", type=Path, default=None, help="save a PNG of generations with ✓/✗ here")
    p.add_argument("--metrics", nargs="+", default=None, metavar="METRIC", help="only these (default: all six)")
    p.add_argument("--guidance", type=_guidance, default=None, help="instead of the model's (for sweeps)")
    p.add_argument("--image-guidance", type=_guidance, default=None, help="edits: instead of the model's")
    p.add_argument(
        "--steps",
        type=_number_in(Limits.min_steps, Limits.max_steps, int),
        default=None,
        help="denoising steps instead of the model's",
    )
    p.add_argument(
        "--time-shift",
        type=_number_in(Limits.min_time_shift, Limits.max_time_shift),
        default=None,
        help="flow time shift instead of the model's",
    )
    _candidates_arg(p, "self-check candidates for images, videos and edits instead of the model's (1: the raw model)")
    _think_arg(p)
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("ablations", help="held-out losses and accuracy of equal-compute `train` runs")
    p.add_argument("runs", type=Path, nargs="+", help="`train --out` folders (each scored on the tasks it trained)")
    p.add_argument("--n", type=int, default=50, help="eval examples per task")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (never used in training)")
    p.add_argument("--json", type=Path, default=None, help="also write the scores here")
    p.add_argument("--plot", type=Path, default=None, help="save a bar chart of held-out losses here")
    p.set_defaults(handler=cmd_ablations)

    p = sub.add_parser("bench", help="CPU/GPU latency of each task at default settings")
    _model_args(p)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--write", type=Path, default=None, help="write the table into this Markdown file")
    p.set_defaults(handler=cmd_bench)

    sub.add_parser("plan", help="PAPAYA memory planner (see `plan --help`)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plan"]:
        return _guarded(lambda: cmd_plan(argv[1:]))
    args = build_parser().parse_args(argv)
    return _guarded(lambda: args.handler(args))


def _guarded(run: Callable[[], int]) -> int:
    """Run a command; user errors become one line on stderr and exit status 2."""
    from tuna_core.checkpoint import CheckpointError

    start = time.perf_counter()
    try:
        return run()
    except (ValueError, CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted after {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return 130

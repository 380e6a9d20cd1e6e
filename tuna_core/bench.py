"""`python -m tuna_core bench`: wall-clock latency of each task at the model's default settings.

Medians over `runs` after one warm-up call, so one-off costs (first allocation, lazy imports)
stay out. `--write FILE` puts the table, with device, versions and date, between marker comments
in a Markdown file (docs/PERFORMANCE.md), leaving the rest of the file alone.
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tuna_core.data.world import render_image, render_video, sample_scene
from tuna_core.pipeline import TunaPipeline

START, END = "<!-- tuna-bench:start -->", "<!-- tuna-bench:end -->"
# Targets for the bundled model on the 2-core CPU machine (issue: the bundled model).
CPU_TARGETS = {"answer": 0.5, "image": 2.0, "video": 10.0, "edit": 2.0}


def _median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_bench(pipe: TunaPipeline, runs: int = 5, write: Path | None = None) -> dict[str, float]:
    rng = np.random.default_rng(0)
    size = pipe.config.image_size
    image = render_image(sample_scene(rng), size)
    video = render_video(sample_scene(rng, video=True), size)
    prompt = "a large red circle at the top left and a small blue square in the center on a black background"
    cases: dict[str, Callable[[], object]] = {
        "answer": lambda: pipe.chat([{"role": "user", "content": "What color is the background?"}], images=[image]),
        "video answer": lambda: pipe.chat([{"role": "user", "content": "Describe the video."}], videos=[video]),
        "image": lambda: pipe.text_to_image(prompt, seed=0),
        "video": lambda: pipe.text_to_video(prompt, seed=0),
        "edit": lambda: pipe.edit(image, "make the red circle blue", seed=0),
    }
    results = {name: _median_seconds(fn, runs) for name, fn in cases.items()}
    table = format_table(pipe, results, runs)
    print(table)
    if write is not None:
        write_section(write, table)
    return results


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} threads"


def format_table(pipe: TunaPipeline, results: dict[str, float], runs: int) -> str:
    backends = ", ".join(f"{k}={v}" for k, v in pipe.units.backends.items() if not k.endswith("_reason"))
    lines = [
        f"Measured {dt.date.today().isoformat()} on {device_name(pipe.device)}; torch {torch.__version__}; "
        f"model `{pipe.model_id}`; defaults: {pipe.defaults.describe()}; back-ends {backends}; "
        f"median of {runs} runs after one warm-up.",
        "",
        "| task | seconds | target |",
        "| --- | --- | --- |",
    ]
    for name, seconds in results.items():
        target = CPU_TARGETS.get(name)
        mark = "" if target is None else f"≤ {target:g} s {'✓' if seconds <= target else '✗'}"
        lines.append(f"| {name} | {seconds:.3f} | {mark} |")
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace the text between the bench markers in `path` (append the section if absent)."""
    text = path.read_text() if path.exists() else "# Performance\n"
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n## CPU latency (bundled model)\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

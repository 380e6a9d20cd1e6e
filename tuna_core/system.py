"""What the app's System panel reports: device, model, engines, memory and the last request's stages.

Kept apart from the app so the CLI and tests can read the same facts; everything is measured
at call time (process RSS from psutil, CUDA memory from torch), nothing is cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psutil
import torch

if TYPE_CHECKING:
    from tuna_core.pipeline import TunaPipeline

MIB = 2**20


def device_name(device: torch.device) -> str:
    """`cpu (N threads)` or `cuda:0 (GPU name, total memory)`."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    threads = torch.get_num_threads()
    return f"{device} ({threads} CPU thread{'s' if threads != 1 else ''})"


def memory_in_use(device: torch.device) -> str:
    """Process resident memory, plus CUDA memory allocated by torch when the model is on a GPU."""
    text = f"{psutil.Process().memory_info().rss / MIB:,.0f} MiB resident (process)"
    if device.type == "cuda":
        allocated = torch.cuda.memory_allocated(device) / MIB
        peak = torch.cuda.max_memory_allocated(device) / MIB
        text += f"; CUDA {allocated:,.0f} MiB allocated (peak {peak:,.0f} MiB)"
    return text


def stage_times(timings: dict[str, float]) -> str:
    """`encode 0.02 s · prefill 0.01 s · …`, in the order the stages ran."""
    if not timings:
        return "no request yet"
    return " · ".join(f"{stage} {seconds:.2f} s" for stage, seconds in timings.items())


def engines(backends: dict[str, str]) -> str:
    """`encoder: tensorrt`, one unit per line, with the reason when a unit fell back to a slower back-end."""
    lines = []
    for unit, backend in backends.items():
        if unit.endswith("_reason"):
            continue
        reason = backends.get(f"{unit}_reason")
        lines.append(f"{unit}: **{backend}**" + (f" ({reason})" if reason else ""))
    return "<br>".join(lines)


def system_info(pipeline: TunaPipeline) -> dict[str, str]:
    """The System panel's rows, measured now."""
    config = pipeline.config
    return {
        "Device": device_name(pipeline.device),
        "Model": f"{pipeline.model_id} (preset shapes: {config.name}, {config.image_size}×{config.image_size} images)",
        "Engines": engines(pipeline.units.backends),
        "Memory in use": memory_in_use(pipeline.device),
        "Last request": stage_times(pipeline.last_timings),
        "Versions": f"torch {torch.__version__}",
    }


def system_markdown(pipeline: TunaPipeline) -> str:
    """`system_info` as a two-column Markdown table."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in system_info(pipeline).items())
    return "| | Now |\n|---|---|\n" + rows

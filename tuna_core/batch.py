"""`run-batch`: many tasks from one JSONL file with one model load.

Input lines: {"id", "task": "t2i"|"t2v"|"edit"|"chat", "prompt"|"instruction"|"question", "image",
"video", "seed", "think"} (paths relative to the JSONL's folder, seed 0 when missing; "think", edits
only, the model's default when missing). Output:
OUT_DIR/results.jsonl with {"id", "task", "output"} (a file under OUT_DIR; an edit the model read
as unchanged adds "warnings") or {"id", "task", "answer"}, plus "seconds"; a bad line becomes
{"id", "error"} and the batch goes on. Results are appended and flushed line by line, so an
interrupted batch keeps what it finished.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tuna_core.media import load_image, load_video, save_mp4, save_png
from tuna_core.pipeline import TunaPipeline

TASKS = ("t2i", "t2v", "edit", "chat")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_batch(pipe: TunaPipeline, jsonl: Path, out_dir: Path) -> list[dict[str, Any]]:
    if not jsonl.exists():
        raise ValueError(f"batch file not found: {jsonl}")
    lines = [line for line in jsonl.read_text().splitlines() if line.strip()]
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with (out_dir / "results.jsonl").open("w") as sink:
        for number, line in enumerate(tqdm(lines, desc="batch", file=sys.stderr), start=1):
            start = time.perf_counter()
            try:
                task = json.loads(line)
                if not isinstance(task, dict):
                    raise ValueError("each line must be a JSON object")
                result = {"id": task.get("id", f"line{number}"), "task": task.get("task")}
                result |= run_task(pipe, task, jsonl.parent, out_dir, str(result["id"]))
            except json.JSONDecodeError as err:
                result = {"id": f"line{number}", "error": f"line {number} is not valid JSON: {err.msg}"}
            except ValueError as err:  # includes MediaError and pipeline validation
                result = {"id": result.get("id", f"line{number}"), "error": str(err)}
            result["seconds"] = round(time.perf_counter() - start, 3)
            sink.write(json.dumps(result) + "\n")
            sink.flush()
            results.append(result)
    return results


def run_task(pipe: TunaPipeline, task: dict[str, Any], base: Path, out_dir: Path, ident: str) -> dict[str, Any]:
    kind = task.get("task")
    if kind not in TASKS:
        raise ValueError(f"unknown task {kind!r}; use one of {', '.join(TASKS)}")
    seed = task.get("seed", 0)
    stem = _SAFE.sub("_", ident) or "item"
    if kind == "t2i":
        result = pipe.text_to_image(_text(task, "prompt"), seed=seed)
        return {"output": save_png(result.images[0], out_dir / f"{stem}.png", result.settings).name}
    if kind == "t2v":
        video = pipe.text_to_video(_text(task, "prompt"), seed=seed)
        return {"output": save_mp4(video.frames, out_dir / f"{stem}.mp4", video.fps, video.settings).name}
    if kind == "edit":
        image = load_image(base / _text(task, "image"), pipe.limits)
        result = pipe.edit(image, _text(task, "instruction"), seed=seed, think=task.get("think"))
        saved = {"output": save_png(result.images[0], out_dir / f"{stem}.png", result.settings).name}
        return saved | ({"warnings": result.warnings} if result.warnings else {})
    images = [load_image(base / task["image"], pipe.limits)] if task.get("image") else None
    videos = [load_video(base / task["video"], pipe.limits)[0]] if task.get("video") else None
    question = _text(task, "question")
    return {"answer": pipe.chat([{"role": "user", "content": question}], images=images, videos=videos)}


def _text(task: dict[str, Any], key: str) -> str:
    value = task.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"task {task.get('task')!r} needs a non-empty {key!r}")
    return value

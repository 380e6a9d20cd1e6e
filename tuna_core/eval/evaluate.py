"""`python -m tuna_core eval`: Shapes World accuracy of a pipeline on scenes training never saw.

Scenes come from the evaluation seed's own namespace (training uses others, see
tuna_core.train.cache), are asked of the model, and the answers or pixels are judged: answers by
exact match with the oracle, pictures by the pixel detector (tuna_core.eval.detector).

- t2i: GenEval-style strict — every named object with the right shape, colour, cell and (when
  the prompt gives it) size, the background when given, and no extra object.
- edit: the result is exactly the expected scene (caption of detected == caption of target),
  also counted per kind of edit (recolor, remove, add, move), since each kind fails its own way.
  A thinking edit's plan is scored too (exactly the target's caption?), to tell a wrong plan from
  a right plan drawn wrong.
- video direction (t2v): every named object found, moving the named way (or still).
- image QA, caption, video QA: exact string match.

The picture metrics also count objects, for partial credit while strict success is still rare:
of all objects the prompts name, the share drawn in their colour at their cell (any shape:
"placed") and the share drawn exactly as named ("exact").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tuna_core.config import SamplerConfig
from tuna_core.data.tasks import ask, edit_kind, sample_edit
from tuna_core.data.world import (
    PromptSpec,
    Scene,
    caption,
    parse_prompt,
    prompt_for,
    render_image,
    render_video,
    sample_scene,
)
from tuna_core.eval.detector import detect_scene, detect_video
from tuna_core.pipeline import TunaPipeline

EVAL_NS = 1000  # seed namespace no training stream uses
METRICS = ("t2i", "image_qa", "caption", "edit", "video_direction", "video_qa")
TARGETS = {"t2i": 0.85, "image_qa": 0.95, "edit": 0.75, "video_direction": 0.75, "video_qa": 0.90}


@dataclass
class Trial:
    """One judged item: what was asked, what came back, and whether it was right."""

    metric: str
    query: str
    expected: str
    got: str
    correct: bool
    image: np.ndarray | None = None
    hits: tuple[int, int, int] = (0, 0, 0)  # objects named, placed, exact (pictures only)
    kind: str | None = None  # edits: recolor, remove, add or move
    plan_correct: bool | None = None  # thinking edits: the plan is the target's caption


def _hits(spec: PromptSpec, got: Scene) -> tuple[int, int, int]:
    return (len(spec.objects), *spec.object_hits(got))


def describe(scene: Scene) -> str:
    """The caption of a detected scene; an output with no shape at all reads as such (it is wrong,
    not an error)."""
    return caption(scene) if scene.objects else f"no shapes on a {scene.background} background"


def _rng(seed: int, metric: str, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, EVAL_NS, METRICS.index(metric), i])


def _ask(pipe: TunaPipeline, question: str, *, image: np.ndarray | None = None, video: np.ndarray | None = None) -> str:
    msg = [{"role": "user", "content": question}]
    return pipe.chat(msg, images=None if image is None else [image], videos=None if video is None else [video])


def trial(pipe: TunaPipeline, metric: str, seed: int, i: int) -> Trial:
    """Run and judge item `i` of `metric` (deterministic in seed and i)."""
    rng = _rng(seed, metric, i)
    size = pipe.config.image_size
    if metric == "t2i":
        scene = sample_scene(rng)
        prompt = prompt_for(scene, rng, 0.3, 0.3)
        image = np.asarray(pipe.text_to_image(prompt, seed=i).images[0])
        got, spec = detect_scene(image), parse_prompt(prompt)
        return Trial(metric, prompt, prompt, describe(got), spec.matches(got), image, _hits(spec, got))
    if metric in ("image_qa", "caption"):
        scene = sample_scene(rng)
        question, answer = ask("qa" if metric == "image_qa" else "caption", scene, rng)
        got = _ask(pipe, question, image=render_image(scene, size))
        return Trial(metric, question, answer, got, got.strip().lower() == answer)
    if metric == "edit":
        scene = sample_scene(rng)
        instruction, target = sample_edit(scene, rng)
        result = pipe.edit(render_image(scene, size), instruction, seed=i)
        image = np.asarray(result.images[0])
        detected, want = detect_scene(image), caption(target)
        got, hits = describe(detected), _hits(parse_prompt(want), detected)
        query = f"{caption(scene)} | {instruction}"
        plan = result.settings.get("thought")
        plan_correct = None if plan is None else plan == want
        return Trial(metric, query, want, got, got == want, image, hits, edit_kind(instruction), plan_correct)
    scene = sample_scene(rng, video=True)
    if metric == "video_qa":
        question, answer = ask("video_qa", scene, rng)
        got = _ask(pipe, question, video=render_video(scene, size))
        return Trial(metric, question, answer, got, got.strip().lower() == answer)
    prompt = caption(scene)
    frames = pipe.text_to_video(prompt, seed=i).frames
    detected = detect_video(frames)
    hits = _hits(parse_prompt(prompt), detected)
    return Trial(
        metric, prompt, prompt, describe(detected), video_matches(scene, detected), frames[len(frames) // 2], hits
    )


def video_matches(scene: Scene, detected: Scene) -> bool:
    """Video direction success: every object drawn is found with its colour, shape, start cell and direction."""
    return all(
        (hit := detected.find(o.color, o.shape)) is not None and hit.direction == o.direction and hit.cell == o.cell
        for o in scene.objects
    )


def evaluate(
    pipe: TunaPipeline,
    n: int = 100,
    seed: int = 12345,
    metrics: tuple[str, ...] = METRICS,
    contact_sheet: Path | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> dict[str, Any]:
    """Accuracy per metric over `n` items each; optionally save a contact sheet of generations."""
    if unknown := [m for m in metrics if m not in METRICS]:
        raise ValueError(f"unknown metric {', '.join(map(repr, unknown))}; choose from {', '.join(METRICS)}")
    sampler = dataclasses.asdict(pipe.defaults)
    report: dict[str, Any] = {"model": pipe.model_id, "n": n, "seed": seed, "sampler": sampler, "metrics": {}}
    shown: list[Trial] = []
    for metric in metrics:
        trials = [trial(pipe, metric, seed, i) for i in tqdm(range(n), desc=f"eval {metric}", leave=False)]
        for t in trials:
            if on_trial:
                on_trial(t)
        shown += [t for t in trials if t.image is not None][:8]
        named, placed, exact = (sum(column) for column in zip(*(t.hits for t in trials), strict=True))
        report["metrics"][metric] = {
            "accuracy": sum(t.correct for t in trials) / n,
            "target": TARGETS.get(metric),
            "objects_placed": placed / named if named else None,
            "objects_exact": exact / named if named else None,
            "failures": [vars(t) | {"image": None} for t in trials if not t.correct][:5],
        }
        if kinds := sorted({t.kind for t in trials if t.kind}):
            report["metrics"][metric]["by_kind"] = {
                k: {"right": sum(t.correct for t in trials if t.kind == k), "n": sum(t.kind == k for t in trials)}
                for k in kinds
            }
        if planned := [t for t in trials if t.plan_correct is not None]:
            right_plans = [t for t in planned if t.plan_correct]
            report["metrics"][metric]["plans"] = {
                "n": len(planned),
                "right": len(right_plans),
                "drawn_right": sum(t.correct for t in right_plans),
            }
    if contact_sheet is not None and shown:
        save_contact_sheet(shown, contact_sheet)
    return report


def format_table(report: dict[str, Any]) -> str:
    sampler = SamplerConfig(**report["sampler"]).describe()
    lines = [
        f"Shapes World evaluation — {report['model']} (n={report['n']} per task, seed {report['seed']}; {sampler})",
        "",
    ]
    lines += ["| task | accuracy | target | objects placed | objects exact |", "| --- | --- | --- | --- | --- |"]

    def cell(value: float | None, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    for metric, row in report["metrics"].items():
        target = cell(row["target"], "≥ {:.2f}")
        placed, exact = (cell(row[k], "{:.3f}") for k in ("objects_placed", "objects_exact"))
        lines.append(f"| {metric} | {row['accuracy']:.3f} | {target} | {placed} | {exact} |")
    for metric, row in report["metrics"].items():
        if "by_kind" in row:
            kinds = ", ".join(f"{k} {c['right']}/{c['n']}" for k, c in row["by_kind"].items())
            lines += ["", f"{metric} right by kind: {kinds}"]
        if plans := row.get("plans"):
            lines.append(
                f"{metric} plans right: {plans['right']}/{plans['n']}, "
                f"and drawn right from a right plan: {plans['drawn_right']}/{plans['right']}"
            )
    return "\n".join(lines)


def save_contact_sheet(trials: list[Trial], path: Path) -> None:
    """Generated images with their prompt and a ✓/✗, for a person to look at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = (len(trials) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, t in zip(axes.flat, trials, strict=False):
        ax.imshow(t.image, interpolation="nearest")
        words = t.query.split()
        text = "\n".join(" ".join(words[k : k + 6]) for k in range(0, len(words), 6))
        ax.set_title(
            f"{'✓' if t.correct else '✗'} {t.metric}\n{text}", fontsize=6.5, color="green" if t.correct else "red"
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

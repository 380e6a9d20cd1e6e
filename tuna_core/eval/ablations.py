"""`python -m tuna_core ablations RUN…`: the paper's claims at small scale, as one table and one figure.

Each RUN is a `train` output folder (equal steps, samples and schedule; see TrainConfig.task_batches).
A run is scored on the tasks it trained, read from the losses it logged: the held-out loss of every
such task (tuna_core.eval.heldout) and the accuracy of the matching `eval` metrics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tuna_core.checkpoint import load_model
from tuna_core.config import TASK_GROUPS, TrainConfig
from tuna_core.eval.evaluate import evaluate
from tuna_core.eval.heldout import held_out_losses
from tuna_core.pipeline import TunaPipeline
from tuna_core.train.common import read_log

# The `eval` metric that judges each training task's output; the ablations compare these six tasks.
METRIC_OF = {
    "t2i": "t2i",
    "caption": "caption",
    "qa": "image_qa",
    "edit": "edit",
    "t2v": "video_direction",
    "video_qa": "video_qa",
}
TASKS = tuple(t for t in TrainConfig.tasks if t in METRIC_OF)


def trained_tasks(run: Path) -> tuple[str, ...]:
    """The tasks a run trained, in TASKS order: those whose loss its log records."""
    logged = {key.split("/")[1].rsplit("_", 1)[0] for rec in read_log(run / "log.jsonl") for key in rec if "/" in key}
    tasks = tuple(t for t in TASKS if t in logged)
    if not tasks:
        raise ValueError(f"{run / 'log.jsonl'} records no task losses; is {run} a `train` output folder?")
    return tasks


def score_run(run: Path, *, n: int, seed: int) -> dict[str, Any]:
    """Held-out losses and eval accuracies of a run's final EMA checkpoint (`RUN/latest`)."""
    tasks = trained_tasks(run)
    model, tok = load_model(run / "latest")
    losses = held_out_losses(model, tok, seed=seed, tasks=tasks)
    pipe = TunaPipeline(model, tok, model_id=run.name)
    report = evaluate(pipe, n=n, seed=seed, metrics=tuple(METRIC_OF[t] for t in tasks))
    return {
        "run": run.name,
        "representation": model.config.representation,
        "steps": read_log(run / "log.jsonl")[-1]["step"],
        "loss": losses,
        "accuracy": {t: report["metrics"][METRIC_OF[t]]["accuracy"] for t in tasks},
    }


def format_ablations(scores: list[dict[str, Any]]) -> str:
    """Markdown: a column per run; a held-out loss row and an accuracy row per task; — where not trained."""
    rows = [
        "| | " + " | ".join(s["run"] for s in scores) + " |",
        "| --- |" + " --- |" * len(scores),
        "| representation | " + " | ".join(s["representation"] for s in scores) + " |",
        "| steps | " + " | ".join(str(s["steps"]) for s in scores) + " |",
    ]
    for kind, label, fmt in (("loss", "held-out {} loss", ".3f"), ("accuracy", "{} accuracy", ".2f")):
        for t in TASKS:
            name = label.format(t if kind == "loss" else METRIC_OF[t])
            cells = [format(s[kind][t], fmt) if t in s[kind] else "—" for s in scores]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_ablations(scores: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars of held-out loss per task (lower is better), one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(scores)
    for k, s in enumerate(scores):
        xs = [i + (k - (len(scores) - 1) / 2) * width for i, t in enumerate(TASKS) if t in s["loss"]]
        ax.bar(xs, [s["loss"][t] for t in TASKS if t in s["loss"]], width, label=s["run"])
    ax.set_xticks(
        range(len(TASKS)), [f"{t}\n({'flow MSE' if t in TASK_GROUPS['generation'] else 'CE'})" for t in TASKS]
    )
    ax.set_ylabel("held-out loss (lower is better)")
    ax.set_title(f"equal-compute ablations, {scores[0]['steps']} steps each")
    top = max(v for s in scores for v in s["loss"].values())
    ax.set_ylim(0, math.ceil(top * 10) / 10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

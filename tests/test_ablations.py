"""Ablations: held-out losses on fixed inputs, the tasks a run trained, the table and the command."""

import json
import shutil

import pytest
import torch
from PIL import Image

from tuna_core.cli import main
from tuna_core.eval.ablations import format_ablations, trained_tasks
from tuna_core.eval.heldout import held_out_losses
from tuna_core.train.common import append_log


def small_losses(pipe, **kw):
    return held_out_losses(pipe.model, pipe.tokenizer, images=4, videos=2, draws=2, **kw)


def test_held_out_losses_are_a_function_of_the_weights_only(fresh_tiny_pipeline):
    first = small_losses(fresh_tiny_pipeline)
    assert first == small_losses(fresh_tiny_pipeline)  # same scenes, texts, noise and t every time
    assert set(first) == {"t2i", "caption", "qa", "edit", "t2v", "video_qa"}
    assert all(v > 0 for v in first.values())
    with torch.no_grad():
        for p in fresh_tiny_pipeline.model.flow_head.parameters():
            p.mul_(1.5)
    moved = small_losses(fresh_tiny_pipeline)
    for task in ("t2i", "edit", "t2v"):  # the flow head shapes every generation loss …
        assert moved[task] != first[task]
    for task in ("caption", "qa", "video_qa"):  # … and no understanding one
        assert moved[task] == first[task]


def test_held_out_losses_score_only_the_tasks_asked_on_the_same_draws(tiny_pipeline):
    every = small_losses(tiny_pipeline)
    assert small_losses(tiny_pipeline, tasks=("qa", "edit")) == {"qa": every["qa"], "edit": every["edit"]}


def test_a_run_trained_the_tasks_its_log_records(tmp_path):
    append_log(tmp_path / "log.jsonl", {"step": 10, "lr": 1e-4, "loss/video_qa_text": 1.0, "loss/qa_text": 2.0})
    assert trained_tasks(tmp_path) == ("qa", "video_qa")
    with pytest.raises(ValueError, match="records no task losses"):
        trained_tasks(tmp_path / "elsewhere")


def test_the_table_marks_untrained_tasks():
    scores = [
        {"run": "joint", "representation": "unified", "steps": 400, "loss": {"t2i": 0.31, "qa": 0.5}, "accuracy": {}},
        {"run": "und", "representation": "decoupled", "steps": 400, "loss": {"qa": 0.45}, "accuracy": {"qa": 0.4}},
    ]
    table = format_ablations(scores).splitlines()
    assert table[0] == "| | joint | und |" and table[2] == "| representation | unified | decoupled |"
    assert "| held-out t2i loss | 0.310 | — |" in table
    assert "| held-out qa loss | 0.500 | 0.450 |" in table
    assert "| image_qa accuracy | — | 0.40 |" in table
    assert len(table) == 4 + 2 * 6


def test_ablations_command_scores_each_run(tiny_checkpoint, tmp_path, capsys):
    run = tmp_path / "understanding"
    shutil.copytree(tiny_checkpoint, run / "latest")
    append_log(run / "log.jsonl", {"step": 10, "loss/caption_text": 3.0, "loss/qa_text": 3.0})
    scores, plot = tmp_path / "s.json", tmp_path / "s.png"
    assert main(["ablations", str(run), "--n", "1", "--json", str(scores), "--plot", str(plot)]) == 0
    assert "| | understanding |" in capsys.readouterr().out
    (score,) = json.loads(scores.read_text())
    assert set(score["loss"]) == set(score["accuracy"]) == {"caption", "qa"}
    assert Image.open(plot).size[0] > 300
    assert main(["ablations", str(tmp_path / "missing")]) == 2
    assert "records no task losses" in capsys.readouterr().err

"""`python -m tuna_core`: every sub-command as a user runs it (subprocesses, saved tiny checkpoint).

A test that must tell the model what to say calls `main` in-process instead."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tuna_core.data.world import render_image, render_video, sample_scene
from tuna_core.eval.evaluate import METRICS
from tuna_core.media import png_settings, save_mp4

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def tuna(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuna_core", *map(str, args)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(render_image(sample_scene(np.random.default_rng(0)))).save(folder / "scene.png")
    save_mp4(render_video(sample_scene(np.random.default_rng(1), video=True)), folder / "clip.mp4", 8)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


def test_generate_image_writes_a_png_with_its_settings(tiny_checkpoint, tmp_path):
    out = tmp_path / "red.png"
    run = tuna(
        "generate-image",
        "--model",
        tiny_checkpoint,
        "--prompt",
        "a red circle",
        "--seed",
        "7",
        "--steps",
        "2",
        "--out",
        out,
    )
    assert run.returncode == 0, run.stderr
    settings = png_settings(out)
    assert (settings["prompt"], settings["seed"], settings["steps"]) == ("a red circle", 7, 2)
    assert Image.open(out).size == (64, 64)


def test_generate_video_writes_h264(tiny_checkpoint, tmp_path):
    out = tmp_path / "clip.mp4"
    run = tuna(
        "generate-video",
        "--model",
        tiny_checkpoint,
        "--prompt",
        "a red circle",
        "--seed",
        "0",
        "--steps",
        "2",
        "--out",
        out,
    )
    assert run.returncode == 0, run.stderr
    cap = cv2.VideoCapture(str(out))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert fourcc.lower() in ("avc1", "h264") and frames == 17


def test_edit_and_ask(tiny_checkpoint, inputs, tmp_path):
    out = tmp_path / "edited.png"
    edit = ["edit", "--model", tiny_checkpoint, "--image", inputs / "scene.png", "--instruction"]
    edit.append("remove the red circle")
    run = tuna(*edit, "--seed", "1", "--steps", "2", "--image-guidance", "2.5", "--no-think", "--out", out)
    assert run.returncode == 0, run.stderr
    settings = png_settings(out)
    assert (settings["instruction"], settings["image_guidance"]) == ("remove the red circle", 2.5)
    assert settings["think"] is False
    thinking = tuna(*edit, "--seed", "0", "--steps", "2", "--think", "--out", out)
    assert thinking.returncode == 0, thinking.stderr
    assert f"thought: {png_settings(out)['thought']}" in thinking.stderr.splitlines()
    for flag, path in (("--image", "scene.png"), ("--video", "clip.mp4")):
        run = tuna("ask", "--model", tiny_checkpoint, flag, inputs / path, "--question", "How many shapes are there?")
        assert run.returncode == 0, run.stderr
        assert len(run.stdout.splitlines()) <= 1  # the answer alone


def test_edit_and_batch_warn_when_every_draw_reads_as_its_source(
    tiny_checkpoint, inputs, tmp_path, edits_change_nothing, capsys
):
    from tuna_core.cli import main

    out = tmp_path / "unchanged.png"
    args = ["--model", tiny_checkpoint, "--image", inputs / "scene.png", "--seed", 0, "--steps", 1, "--candidates", 2]
    edit = ["edit", *map(str, args), "--no-think", "--instruction", "remove the red circle", "--out", str(out)]
    assert main(edit) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == str(out) and png_settings(out)["candidates"] == 2  # the result is still saved
    assert printed.err.count("warning: ") == 1 and "all 2 draws" in printed.err
    batch = tmp_path / "batch.jsonl"
    line = {"id": "e", "task": "edit", "instruction": "remove it", "image": str(args[3]), "think": False}
    batch.write_text(json.dumps(line))
    assert main(["run-batch", "--model", str(tiny_checkpoint), str(batch), str(tmp_path / "out")]) == 0
    (result,) = map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())
    assert "output" in result and len(result["warnings"]) == 1 and "draws" in result["warnings"][0]


def test_run_batch_reports_bad_lines_and_goes_on(tiny_checkpoint, inputs, tmp_path):
    lines = [
        {"id": "a", "task": "t2i", "prompt": "a red circle", "seed": 1},
        {"id": "b", "task": "edit", "instruction": "remove the red circle", "image": "scene.png"},
        {"id": "c", "task": "chat", "question": "What color is the background?", "image": "scene.png"},
        {"id": "d", "task": "chat", "question": "Which way is it moving?", "video": "clip.mp4"},
        {"id": "e", "task": "t2i", "prompt": ""},
        {"id": "f", "task": "paint"},
        {"id": "g", "task": "edit", "instruction": "remove it", "image": "notes.txt"},
    ]
    batch = inputs / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    run = tuna("run-batch", "--model", tiny_checkpoint, batch, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    assert (tmp_path / "out" / results["a"]["output"]).exists() and results["a"]["task"] == "t2i"
    assert (tmp_path / "out" / results["b"]["output"]).exists()
    assert isinstance(results["c"]["answer"], str) and "answer" in results["d"]
    assert "prompt" in results["e"]["error"] and "paint" in results["f"]["error"] and ".txt" in results["g"]["error"]
    assert "not valid JSON" in results["line8"]["error"]
    assert all("seconds" in r for r in results.values())


def test_eval_prints_the_table_and_writes_json_and_a_contact_sheet(tiny_checkpoint, tmp_path):
    report_path, sheet = tmp_path / "r.json", tmp_path / "s.png"
    done = tuna("eval", "--model", tiny_checkpoint, "--n", "1", "--json", report_path, "--sheet", sheet)
    assert done.returncode == 0, done.stderr
    assert "| t2i |" in done.stdout and "≥ 0.85" in done.stdout
    report = json.loads(report_path.read_text())
    assert set(report["metrics"]) == {"t2i", "image_qa", "caption", "edit", "video_direction", "video_qa"}
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in report["metrics"].values())
    assert Image.open(sheet).size[0] > 64


def test_eval_runs_only_the_metrics_asked_for_and_names_an_unknown_one(tiny_checkpoint, tmp_path):
    report_path = tmp_path / "r.json"
    done = tuna("eval", "--model", tiny_checkpoint, "--n", "1", "--metrics", "caption", "t2i", "--json", report_path)
    assert done.returncode == 0, done.stderr
    assert list(json.loads(report_path.read_text())["metrics"]) == ["caption", "t2i"]
    bad = tuna("eval", "--model", tiny_checkpoint, "--n", "1", "--metrics", "t2v")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: unknown metric 't2v'; choose from " + ", ".join(METRICS)]


def test_eval_takes_sampler_overrides_and_records_them(tiny_checkpoint, tmp_path):
    report_path = tmp_path / "r.json"
    args = ["eval", "--model", tiny_checkpoint, "--n", "1", "--metrics", "edit", "--json", report_path]
    overrides = ("--guidance", "3", "--image-guidance", "2.5", "--steps", "2", "--time-shift", "3", "--candidates", "1")
    done = tuna(*args, *overrides, "--no-think")
    assert done.returncode == 0, done.stderr
    sampler = json.loads(report_path.read_text())["sampler"]
    assert sampler["edit_think"] is False
    chosen = (sampler["guidance"], sampler["image_guidance"], sampler["steps"], sampler["time_shift"])
    assert chosen == (3.0, 2.5, 2, 3.0)
    assert (sampler["image_candidates"], sampler["video_candidates"], sampler["edit_candidates"]) == (1, 1, 1)
    assert "2 euler steps, time shift 3.0, guidance 3.0" in done.stdout and "self-check" not in done.stdout
    bad = tuna(*args, "--image-guidance", "0.5")
    assert bad.returncode == 2 and "--image-guidance: must be a number in [1.0, 20.0], got '0.5'" in bad.stderr
    bad = tuna(*args, "--steps", "2.5")
    assert bad.returncode == 2 and "--steps: must be an integer in [1, 200], got '2.5'" in bad.stderr
    bad = tuna(*args, "--candidates", "9")
    assert bad.returncode == 2 and "--candidates: must be an integer in [1, 8], got '9'" in bad.stderr


def test_info_counts_parameters_of_a_full_size_preset():
    run = tuna("info", "--preset", "tuna-1.5b", "--json")
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout)["parameters"]
    assert set(counts) == {"vae", "rep_encoder", "connector", "llm", "flow_head"}
    assert 1.4e9 < counts["llm"] < 1.7e9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate-image", "--model", "/nonexistent", "--prompt", "x", "--seed", "0", "--out", "x.png"],
            "no TUNA checkpoint",
        ),
        (["ask", "--preset", "tiny", "--image", "{inputs}/notes.txt", "--question", "hi"], "unsupported image type"),
        (["ask", "--preset", "tiny", "--image", "{inputs}/broken.png", "--question", "hi"], "corrupt"),
        (
            [
                "generate-video",
                "--preset",
                "tiny",
                "--prompt",
                "a red circle",
                "--seed",
                "0",
                "--frames",
                "10",
                "--out",
                "x.mp4",
            ],
            "4·n+1",
        ),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(inputs, args, message):
    run = tuna(*[a.format(inputs=inputs) for a in args])
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error:")

"""The annotation store: outputs on disk, ratings in SQLite (WAL), nothing lost to restarts, crashes or concurrency."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuna_core.annotations import COLUMNS, AnnotationStore, Result
from tuna_core.media import load_video, png_settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"task": "t2i", "prompt": "a large red circle at the top left", "seed": 7, "steps": 20, "model": "tiny-test"}


def red_image() -> Image.Image:
    return Image.new("RGB", (64, 64), (230, 25, 25))


@pytest.fixture
def store(tmp_path: Path) -> AnnotationStore:
    return AnnotationStore(tmp_path / "data")


@pytest.fixture
def result(store: AnnotationStore) -> Result:
    return store.save_image(red_image(), SETTINGS)


def test_saved_image_is_a_png_with_its_settings_and_the_result_points_at_it(store: AnnotationStore) -> None:
    result = store.save_image(red_image(), SETTINGS)
    assert result.output.startswith("outputs/t2i/") and result.output.endswith(".png")
    assert png_settings(store.path(result)) == SETTINGS
    assert (result.task, result.prompt, result.seed, result.model_id) == ("t2i", SETTINGS["prompt"], 7, "tiny-test")


def test_edited_image_keeps_its_source_beside_it(store: AnnotationStore) -> None:
    settings = {"task": "edit", "instruction": "make the red circle blue", "seed": 0, "model": "m"}
    result = store.save_image(red_image(), settings, source=Image.new("RGB", (64, 64)))
    assert result.prompt == "make the red circle blue"
    assert (store.root / result.settings["source"]).is_file()


def test_saved_video_is_a_playable_mp4(store: AnnotationStore) -> None:
    frames = np.zeros((5, 64, 64, 3), np.uint8)
    result = store.save_video(frames, 8, {"task": "t2v", "prompt": "p", "seed": 1, "model": "m"})
    assert load_video(store.path(result))[0].shape == (5, 64, 64, 3)


def test_chat_turn_is_saved_with_its_attachment_copied_once(store: AnnotationStore, tmp_path: Path) -> None:
    upload = tmp_path / "upload.png"
    red_image().save(upload)
    settings = {"task": "chat", "prompt": "What color is the circle?", "seed": 0, "model": "m"}
    messages = [{"role": "user", "content": "What color is the circle?"}]
    first = store.save_chat(messages, "red", [upload], settings)
    second = store.save_chat(messages, "red", [upload], settings)
    record = json.loads(store.path(first).read_text())
    assert record["answer"] == "red" and record["messages"] == messages
    assert (store.root / record["attachments"][0]).read_bytes() == upload.read_bytes()
    assert json.loads(store.path(second).read_text())["attachments"] == record["attachments"]
    assert len(list((store.root / "outputs" / "attachments").iterdir())) == 1


def test_database_runs_in_wal_mode(store: AnnotationStore) -> None:
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rating_stores_prompt_settings_seed_model_file_annotator_and_time(
    store: AnnotationStore, result: Result
) -> None:
    row_id = store.rate(result, 4, "  circle a bit small ", " alice ")
    (row,) = store.rows()
    assert row["id"] == row_id
    assert {k: row[k] for k in ("kind", "task", "prompt", "seed", "model_id", "output", "score", "annotator")} == {
        "kind": "rating",
        "task": "t2i",
        "prompt": SETTINGS["prompt"],
        "seed": 7,
        "model_id": "tiny-test",
        "output": result.output,
        "score": 4,
        "annotator": "alice",
    }
    assert row["comment"] == "circle a bit small"
    assert json.loads(row["settings"]) == SETTINGS
    assert row["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("score", "annotator", "message"),
    [
        (None, "alice", "pick a score from 1 to 5"),
        (0, "alice", "pick a score from 1 to 5"),
        (6, "alice", "pick a score from 1 to 5"),
        (3.5, "alice", "pick a score from 1 to 5"),
        (3, "   ", "type your annotator name first"),
        (3, "x" * 101, "the annotator name has 101 characters"),
    ],
)
def test_rating_rejects_bad_input_with_a_plain_sentence(
    store: AnnotationStore, result: Result, score: object, annotator: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.rate(result, score, "", annotator)  # type: ignore[arg-type]
    assert store.rows() == []


def test_rating_needs_a_result_whose_file_exists(store: AnnotationStore, result: Result) -> None:
    with pytest.raises(ValueError, match="no result to rate yet"):
        store.rate(None, 3, "", "alice")
    store.path(result).unlink()
    with pytest.raises(ValueError, match="missing from the data folder"):
        store.rate(result, 3, "", "alice")


def test_comparison_stores_both_results_and_the_choice(store: AnnotationStore) -> None:
    a = store.save_image(red_image(), SETTINGS)
    b = store.save_image(red_image(), SETTINGS | {"seed": 8})
    store.compare(a, b, "B", "B has the right size", "bob")
    (row,) = store.rows()
    assert (row["kind"], row["choice"], row["score"]) == ("comparison", "B", None)
    assert (row["output"], row["output_b"], row["seed"], row["seed_b"]) == (a.output, b.output, 7, 8)
    assert json.loads(row["settings_b"])["seed"] == 8


def test_comparison_rejects_a_bad_choice_or_different_prompts(store: AnnotationStore) -> None:
    a = store.save_image(red_image(), SETTINGS)
    other = store.save_image(red_image(), SETTINGS | {"prompt": "a small blue square in the center"})
    with pytest.raises(ValueError, match="choose A, B or tie"):
        store.compare(a, a, "C", "", "bob")
    with pytest.raises(ValueError, match="different prompts"):
        store.compare(a, other, "A", "", "bob")
    with pytest.raises(ValueError, match="generate both A and B"):
        store.compare(a, None, "A", "", "bob")


def test_exports_hold_every_row_as_csv_and_jsonl(store: AnnotationStore, result: Result) -> None:
    store.rate(result, 2, "first", "alice")
    store.rate(result, 5, "second, with a comma", "bob")
    with store.export_csv().open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["comment"] for r in rows] == ["first", "second, with a comma"]
    assert list(rows[0]) == list(COLUMNS)
    lines = [json.loads(line) for line in store.export_jsonl().read_text().splitlines()]
    assert [(r["annotator"], r["score"]) for r in lines] == [("alice", 2), ("bob", 5)]
    assert lines[0]["settings"] == SETTINGS


def test_ratings_survive_reopening_the_store(store: AnnotationStore, result: Result) -> None:
    store.rate(result, 3, "kept", "alice")
    reopened = AnnotationStore(store.root)
    assert [(r["annotator"], r["comment"]) for r in reopened.rows()] == [("alice", "kept")]


def test_concurrent_annotators_lose_no_rows(store: AnnotationStore, result: Result) -> None:
    """Eight threads, each with its own store object on the same folder, write 25 ratings at once."""
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def annotate(n: int) -> None:
        own = AnnotationStore(store.root)
        barrier.wait()
        try:
            for i in range(per_thread):
                own.rate(result, 1 + (i % 5), f"{n}-{i}", f"annotator-{n}")
        except BaseException as err:  # collected and re-raised below, in the test thread
            errors.append(err)

    workers = [threading.Thread(target=annotate, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    rows = store.rows()
    assert len(rows) == threads * per_thread
    assert {r["comment"] for r in rows} == {f"{n}-{i}" for n in range(threads) for i in range(per_thread)}


_CRASHING_WRITER = """
import sys
from tuna_core.annotations import AnnotationStore, Result
store = AnnotationStore(sys.argv[1])
result = Result(**__import__("json").loads(sys.argv[2]))
while True:
    print(store.rate(result, 3, "", "crash-test"), flush=True)
"""


def test_committed_ratings_survive_a_killed_process(store: AnnotationStore, result: Result) -> None:
    """A writer is SIGKILLed mid-stream; every row it reported as committed is there, and the file is intact."""
    data = json.dumps(vars(result))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WRITER, str(store.root), data], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    committed = [int(proc.stdout.readline()) for _ in range(40)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ids = {r["id"] for r in AnnotationStore(store.root).rows()}
    assert set(committed) <= ids
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

"""The annotation store: every output the app makes, on disk, and every rating of one, in SQLite.

    DATA_DIR/
      annotations.sqlite3        one row per rating (1–5) or A/B comparison
      outputs/<task>/NAME.png    images, prompt and settings in PNG text chunks
      outputs/<task>/NAME.mp4    videos (H.264, settings in the comment tag)
      outputs/chat/NAME.json     a chat turn: messages, answer, attachments (copied to outputs/attachments/)
      exports/                   CSV and JSONL exports of the table

A rating points at a real file, so an annotation can always be traced to what was judged.
Several annotators rate at once (Gradio runs callbacks in threads, and two app processes may share
a folder), so the database runs in WAL mode: readers never block the writer, a writer waits for
the lock instead of failing, and a committed row survives a crash (synchronous=FULL). Every call
opens its own connection; none is shared between threads. Outputs are written to a temporary
name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
from PIL import Image

from tuna_core.media import atomic_write, save_mp4, save_png

DB_NAME = "annotations.sqlite3"
CHOICES = ("A", "B", "tie")
MAX_COMMENT_CHARS = 2000
MAX_ANNOTATOR_CHARS = 100

# Columns in table order; exports and the app's results view use this order.
COLUMNS = (
    "id",
    "created_at",
    "annotator",
    "kind",
    "task",
    "model_id",
    "prompt",
    "seed",
    "settings",
    "output",
    "score",
    "choice",
    "seed_b",
    "settings_b",
    "output_b",
    "comment",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS annotations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT    NOT NULL,                -- UTC, ISO 8601
    annotator   TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('rating', 'comparison')),
    task        TEXT    NOT NULL,                -- chat, t2i, t2v, edit
    model_id    TEXT    NOT NULL,
    prompt      TEXT    NOT NULL,                -- prompt, question or instruction
    seed        INTEGER,
    settings    TEXT    NOT NULL,                -- JSON
    output      TEXT    NOT NULL,                -- file, relative to the data folder
    score       INTEGER CHECK (score BETWEEN 1 AND 5),
    choice      TEXT    CHECK (choice IN ('A', 'B', 'tie')),
    seed_b      INTEGER,                         -- comparisons: result B
    settings_b  TEXT,
    output_b    TEXT,
    comment     TEXT    NOT NULL DEFAULT '',
    CHECK ((kind = 'rating' AND score IS NOT NULL AND choice IS NULL)
        OR (kind = 'comparison' AND choice IS NOT NULL AND score IS NULL AND output_b IS NOT NULL))
);
"""


@dataclass(frozen=True, eq=False)
class Result:
    """One saved output as a rating needs it: what was asked, with which settings, and where the file is.

    Compared and hashed by identity (each save is its own result), which also lets Gradio keep it in a State.
    """

    task: str  # "chat", "t2i", "t2v" or "edit"
    prompt: str  # the prompt, question or instruction
    seed: int
    settings: dict[str, Any]
    model_id: str
    output: str  # path relative to the data folder


class AnnotationStore:
    """Outputs and ratings under one data folder (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / DB_NAME
        with self._transaction() as con:
            con.executescript(_SCHEMA)

    # -- outputs --------------------------------------------------------------------------------
    def path(self, result: Result) -> Path:
        """The absolute path of a result's file."""
        return self.root / result.output

    def save_image(self, image: Image.Image, settings: dict[str, Any], source: Image.Image | None = None) -> Result:
        """Save a generated (or, with `source`, an edited) image as PNG with `settings` in its metadata."""
        path = self._new_path(settings["task"], ".png")
        if source is not None:
            source_path = path.with_name(f"{path.stem}-source.png")
            save_png(source, source_path, {})
            settings = settings | {"source": self._relative(source_path)}
        save_png(image, path, settings)
        return self._result(settings, path)

    def save_video(self, frames: np.ndarray, fps: int, settings: dict[str, Any]) -> Result:
        """Save (T, H, W, 3) uint8 frames as an H.264 MP4 with `settings` in its comment tag."""
        path = self._new_path(settings["task"], ".mp4")
        save_mp4(frames, path, fps, settings)
        return self._result(settings, path)

    def save_chat(
        self,
        messages: Sequence[dict[str, str]],
        answer: str,
        attachments: Sequence[str | Path],
        settings: dict[str, Any],
    ) -> Result:
        """Save a chat turn as JSON; attachments are copied in by content hash, so a file is stored once."""
        copies = [self._relative(self._copy_attachment(Path(a))) for a in attachments]
        path = self._new_path(settings["task"], ".json")
        record = {"settings": settings, "messages": list(messages), "answer": answer, "attachments": copies}
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
        return self._result(settings, path)

    def _new_path(self, task: str, suffix: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return self.root / "outputs" / task / f"{stamp}-{uuid4().hex[:8]}{suffix}"

    def _copy_attachment(self, source: Path) -> Path:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        target = self.root / "outputs" / "attachments" / f"{digest}{source.suffix.lower()}"
        if not target.exists():
            atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
        return target

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _result(self, settings: dict[str, Any], path: Path) -> Result:
        prompt = settings.get("prompt", settings.get("instruction", ""))
        return Result(
            settings["task"], prompt, int(settings.get("seed", 0)), settings, settings["model"], self._relative(path)
        )

    # -- ratings --------------------------------------------------------------------------------
    def rate(self, result: Result | None, score: int | None, comment: str, annotator: str) -> int:
        """Store a 1–5 rating of `result`; returns the new row id."""
        if result is None:
            raise ValueError("there is no result to rate yet; generate one first")
        if score is None or isinstance(score, bool) or int(score) != score or not 1 <= int(score) <= 5:
            raise ValueError(f"pick a score from 1 to 5, got {score!r}")
        row = self._row("rating", result, comment, annotator) | {"score": int(score)}
        return self._insert(row)

    def compare(self, a: Result | None, b: Result | None, choice: str | None, comment: str, annotator: str) -> int:
        """Store which of two results of the same prompt is better ("A", "B" or "tie"); returns the row id."""
        if a is None or b is None:
            raise ValueError("generate both A and B before comparing them")
        if choice not in CHOICES:
            raise ValueError(f"choose A, B or tie, got {choice!r}")
        if (a.task, a.prompt) != (b.task, b.prompt):
            raise ValueError("A and B answer different prompts; generate both again from the same prompt")
        self._check_file(b)
        row = self._row("comparison", a, comment, annotator) | {
            "choice": choice,
            "seed_b": b.seed,
            "settings_b": json.dumps(b.settings, sort_keys=True),
            "output_b": b.output,
        }
        return self._insert(row)

    def _row(self, kind: str, result: Result, comment: str, annotator: str) -> dict[str, Any]:
        annotator = (annotator or "").strip()
        if not annotator:
            raise ValueError("type your annotator name first, so the rating can be attributed")
        if len(annotator) > MAX_ANNOTATOR_CHARS:
            raise ValueError(f"the annotator name has {len(annotator)} characters; the limit is {MAX_ANNOTATOR_CHARS}")
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(f"the comment has {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
        self._check_file(result)
        return {
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "annotator": annotator,
            "kind": kind,
            "task": result.task,
            "model_id": result.model_id,
            "prompt": result.prompt,
            "seed": result.seed,
            "settings": json.dumps(result.settings, sort_keys=True),
            "output": result.output,
            "comment": comment,
        }

    def _check_file(self, result: Result) -> None:
        path = self.path(result).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise ValueError(f"the output file {result.output} is missing from the data folder; generate it again")

    def _insert(self, row: dict[str, Any]) -> int:
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        with self._transaction() as con:
            cursor = con.execute(f"INSERT INTO annotations ({names}) VALUES ({marks})", row)
        return int(cursor.lastrowid or 0)

    # -- reading and export ---------------------------------------------------------------------
    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """All annotations, newest first; `settings` columns stay JSON text."""
        query = f"SELECT {', '.join(COLUMNS)} FROM annotations ORDER BY id DESC"
        with self._transaction() as con:
            cursor = con.execute(query + " LIMIT ?", (limit,)) if limit else con.execute(query)
            return [dict(zip(COLUMNS, values, strict=True)) for values in cursor.fetchall()]

    def export_csv(self) -> Path:
        """Write every annotation (oldest first) to exports/annotations-TIME.csv; settings as JSON text."""
        rows = self.rows()[::-1]

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(rows)

        return self._export(".csv", write)

    def export_jsonl(self) -> Path:
        """Write every annotation (oldest first) to exports/annotations-TIME.jsonl; settings as objects."""
        rows = self.rows()[::-1]
        for row in rows:
            for key in ("settings", "settings_b"):
                row[key] = json.loads(row[key]) if row[key] else None
        lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        return self._export(".jsonl", lambda tmp: tmp.write_text(lines, encoding="utf-8"))

    def _export(self, suffix: str, write: Callable[[Path], Any]) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        path = self.root / "exports" / f"annotations-{stamp}{suffix}"
        atomic_write(path, write)
        return path

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in one transaction: committed on success, rolled back on error, then closed."""
        con = sqlite3.connect(self.db_path, timeout=30.0)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            with con:
                yield con
        finally:
            con.close()

"""Shared fixtures: tiny random-weight models and checkpoints built in-test (nothing downloaded)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


def make_tiny_pipeline(seed: int = 0):
    """A random-weight tiny pipeline whose flow head is not zero (so outputs depend on inputs)."""
    from tuna_core.checkpoint import load_model
    from tuna_core.pipeline import TunaPipeline

    torch.manual_seed(seed)
    model, tokenizer = load_model(preset="tiny")
    for p in model.flow_head.parameters():
        torch.nn.init.normal_(p, std=0.02)
    return TunaPipeline(model, tokenizer, model_id="tiny-random")


@pytest.fixture(scope="session")
def tiny_pipeline():
    return make_tiny_pipeline()


@pytest.fixture
def edits_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model describes every edit draw exactly as it describes the source: each edit keeps its first draw."""
    from tuna_core.model import TunaModel

    monkeypatch.setattr(TunaModel, "says", lambda self, layouts, clean: torch.ones(len(layouts), dtype=torch.bool))


@pytest.fixture
def fresh_tiny_pipeline():
    """A pipeline the test may change (memory methods, engines) without touching the shared one."""
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline) -> Path:
    """A saved random tiny checkpoint folder (config.json, part folders, tuna.safetensors)."""
    from tuna_core.checkpoint import save_pretrained

    folder = tmp_path_factory.mktemp("ckpt") / "tiny-random"
    save_pretrained(tiny_pipeline.model, tiny_pipeline.tokenizer, folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(pipeline, data_dir: Path, **build: object) -> Iterator[tuple[object, str]]:
    """Build and launch the app in-process on a free port, as `main()` does; close it afterwards.

    Yields the annotation store and the app's URL.
    """
    import app
    from tuna_core.annotations import AnnotationStore

    store = AnnotationStore(data_dir)
    demo = app.build_demo(pipeline, store, **build)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(pipeline, store),
    )
    try:
        yield store, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()

"""Shared fixtures: tiny random-weight models and checkpoints built in-test (nothing downloaded)."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline) -> Path:
    """A saved random tiny checkpoint folder (config.json, part folders, tuna.safetensors)."""
    from tuna_core.checkpoint import save_pretrained

    folder = tmp_path_factory.mktemp("ckpt") / "tiny-random"
    save_pretrained(tiny_pipeline.model, tiny_pipeline.tokenizer, folder)
    return folder

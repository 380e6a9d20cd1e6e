"""Checkpoints: the documented folder layout, per-part library folders and one-line errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

from tuna_core.checkpoint import CheckpointError, load_model
from tuna_core.pipeline import TunaPipeline

PROMPT = "a small blue square in the center"


def test_folder_has_the_documented_layout(tiny_checkpoint):
    expected = [
        "config.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "rep_encoder/config.json",
        "rep_encoder/model.safetensors",
        "llm/config.json",
        "llm/model.safetensors",
        "tokenizer/tokenizer.json",
        "tuna.safetensors",
    ]
    assert all((tiny_checkpoint / name).exists() for name in expected)
    assert not list(tiny_checkpoint.rglob("*.bin")) and not list(tiny_checkpoint.rglob("*.pt"))


def test_reloaded_checkpoint_generates_the_same_image(tiny_pipeline, tiny_checkpoint):
    model, tok = load_model(tiny_checkpoint)
    again = TunaPipeline(model, tok).text_to_image(PROMPT, seed=4, steps=3)
    first = tiny_pipeline.text_to_image(PROMPT, seed=4, steps=3)
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))


@pytest.fixture
def broken(tmp_path, tiny_checkpoint):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    return folder


def test_missing_file_is_named(broken):
    (broken / "llm" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing checkpoint file: .*llm/model\.safetensors"):
        load_model(broken)


def test_mismatched_tensor_is_named_with_its_file(broken):
    path = broken / "tuna.safetensors"
    state = load_file(str(path))
    state["connector.fc1.weight"] = torch.zeros(3, 3)
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"tuna\.safetensors: tensor fc1\.weight has shape \(3, 3\)"):
        load_model(broken)


def test_corrupt_weights_file_is_a_one_line_error(broken):
    (broken / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read") as err:
        load_model(broken)
    assert "\n" not in str(err.value)


def test_parts_load_from_their_own_library_folders(tmp_path, tiny_checkpoint, tiny_pipeline):
    """A SigLIP checkpoint with pixel patches, a head and one layer more; a Qwen2 with a smaller vocab."""
    cfg = tiny_pipeline.config
    rep = dict(cfg.rep_encoder)
    siglip = SiglipVisionModel(
        SiglipVisionConfig(
            **{
                **rep,
                "num_channels": 3,
                "patch_size": 16,
                "image_size": 128,
                "num_hidden_layers": rep["num_hidden_layers"] + 1,
                "vision_use_head": True,
            }
        )
    )
    siglip.save_pretrained(tmp_path / "siglip")
    base_vocab = tiny_pipeline.tokenizer.vocab_size - 8
    qwen = Qwen2ForCausalLM(Qwen2Config(**{**cfg.llm, "vocab_size": base_vocab}))
    qwen.save_pretrained(tmp_path / "qwen")

    model, _ = load_model(tiny_checkpoint, rep_encoder=tmp_path / "siglip", llm=tmp_path / "qwen")
    got = model.rep_encoder.tower.state_dict()
    want = siglip.state_dict()
    layer0 = next(k for k in got if "layers.0.self_attn.q_proj.weight" in k)
    assert torch.equal(got[layer0], want[layer0])  # real weights arrived
    assert got[next(k for k in got if k.endswith("patch_embedding.weight"))].shape[1] == cfg.latent_channels
    emb = model.llm.get_input_embeddings().weight
    assert emb.shape[0] == tiny_pipeline.tokenizer.vocab_size
    assert torch.equal(emb[:base_vocab], qwen.get_input_embeddings().weight)


def test_vae_latent_statistics_come_from_the_vae_config(broken):
    cfg_path = broken / "vae" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["latents_mean"] = [0.5] * len(cfg["latents_mean"])
    cfg_path.write_text(json.dumps(cfg))
    model, _ = load_model(broken)
    assert torch.allclose(model.vae.mean, torch.full_like(model.vae.mean, 0.5))


def test_loading_needs_a_folder_or_a_preset():
    with pytest.raises(CheckpointError, match="--preset"):
        load_model()

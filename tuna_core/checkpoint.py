"""Checkpoints: one folder, one library-format sub-folder per part, safetensors only.

    MODEL_DIR/
      config.json               ModelConfig (tuna_core.config)
      vae/                      diffusers AutoencoderKLWan folder (config.json, diffusion_pytorch_model.safetensors)
      rep_encoder/              transformers SiglipVisionModel folder (config.json, model.safetensors)
      llm/                      transformers Qwen2ForCausalLM folder (config.json, model.safetensors)
      tokenizer/                tokenizer.json (+ tokenizer_config.json for pretrained tokenizers)
      tuna.safetensors          connector, time embedder and flow head

A part may instead come from its own library folder (`load_model(..., vae=DIR, rep_encoder=DIR,
llm=DIR, tokenizer=DIR)`): a diffusers Wan VAE, a transformers SigLIP/SigLIP2 vision or full
model (its pixel patch embedding, last layer and pooling head are dropped), a Qwen2 LLM.
Weights are read with safetensors (no unpickling), nothing is fetched from a hub, and a
missing or mismatched file raises ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tuna_core.config import ModelConfig
from tuna_core.model import TunaModel
from tuna_core.tokenizer import TunaTokenizer

VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"
HF_WEIGHTS = "model.safetensors"
TUNA_WEIGHTS = "tuna.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder or file is missing or does not match the model; the message names it."""


def save_pretrained(model: TunaModel, tokenizer: TunaTokenizer, folder: str | Path) -> None:
    """Write `model` and `tokenizer` in the layout above (parts in their libraries' formats)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder / "config.json")
    model.vae.vae.save_pretrained(folder / "vae", safe_serialization=True)
    model.rep_encoder.tower.save_pretrained(folder / "rep_encoder", safe_serialization=True)
    model.llm.save_pretrained(folder / "llm", safe_serialization=True)
    tokenizer.save(folder / "tokenizer")
    tensors = {
        f"{name}.{k}": v.detach().contiguous().cpu()
        for name, mod in own_parts(model).items()
        for k, v in mod.state_dict().items()
    }
    save_file(tensors, str(folder / TUNA_WEIGHTS))


def load_model(
    folder: str | Path | None = None,
    *,
    preset: str | None = None,
    vae: str | Path | None = None,
    rep_encoder: str | Path | None = None,
    llm: str | Path | None = None,
    tokenizer: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[TunaModel, TunaTokenizer]:
    """Load a TUNA checkpoint folder, or assemble one from a preset and per-part library folders.

    With `folder`, every part comes from it unless a per-part folder overrides it. Without it,
    `preset` gives the shapes and parts without a folder keep random weights (benchmarks).
    """
    if folder is None and preset is None:
        raise CheckpointError("give a checkpoint folder (--model DIR) or a preset (--preset tiny)")
    root = Path(folder) if folder is not None else None
    if root is not None:
        _require(root / "config.json")
        config = ModelConfig.load(root / "config.json")
        vae = vae or root / "vae"
        rep_encoder = rep_encoder or root / "rep_encoder"
        llm = llm or root / "llm"
        tokenizer = tokenizer or root / "tokenizer"
    else:
        config = ModelConfig.preset(preset)

    tok = _load_tokenizer(config, tokenizer)
    config = dataclasses.replace(config, llm={**config.llm, "vocab_size": tok.vocab_size})
    if llm is not None:
        _require(Path(llm) / "config.json")
        llm_vocab = json.loads((Path(llm) / "config.json").read_text()).get("vocab_size", tok.vocab_size)
        config = dataclasses.replace(config, llm={**config.llm, "vocab_size": max(llm_vocab, tok.vocab_size)})
    model = TunaModel(config)
    if vae is not None:
        _load_into(model.vae.vae, Path(vae) / VAE_WEIGHTS)
        _adopt_vae_statistics(model, Path(vae) / "config.json")
    if rep_encoder is not None:
        _load_into(model.rep_encoder.tower, Path(rep_encoder) / HF_WEIGHTS, adapt=_adapt_siglip)
    if llm is not None:
        _load_into(model.llm, Path(llm) / HF_WEIGHTS, adapt=_adapt_llm)
    if root is not None:
        path = root / TUNA_WEIGHTS
        _require(path)
        state = load_file(str(path))
        for name, module in own_parts(model).items():
            part = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
            _check_and_load(module, part, path)
    return model.to(device=device, dtype=dtype).eval(), tok


def own_parts(model: TunaModel) -> dict[str, nn.Module]:
    """The parts no library folder holds; they share tuna.safetensors, prefixed by name."""
    parts = {"connector": model.connector, "time_embed": model.time_embed, "flow_head": model.flow_head}
    return parts | ({"latent_tokens": model.latent_tokens} if model.latent_tokens is not None else {})


def _require(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"missing checkpoint file: {path}")


def _load_tokenizer(config: ModelConfig, folder: str | Path | None) -> TunaTokenizer:
    if folder is not None:
        try:
            return TunaTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot load tokenizer from {folder}: {err}") from None
    if config.tokenizer != "word":
        raise CheckpointError(f"preset {config.name!r} needs a tokenizer folder (--tokenizer DIR or --model DIR)")
    from tuna_core.data.tasks import vocabulary  # the Shapes World words define the tiny vocabulary

    return TunaTokenizer.word_level(vocabulary())


def _load_into(module: nn.Module, path: Path, adapt=None) -> None:
    _require(path)
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"cannot read {path}: {err}") from None
    if adapt is not None:
        state = adapt(module, state)
    _check_and_load(module, state, path)


def _check_and_load(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` strictly, turning key and shape mismatches into one line that names `path`."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{path} does not match the model config: {detail}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: tensor {key} has shape {tuple(value.shape)}, the config expects {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state, strict=True)


def _adopt_vae_statistics(model: TunaModel, config_path: Path) -> None:
    """A VAE's latents_mean/std live in its config.json; copy them into the model."""
    _require(config_path)
    cfg = json.loads(config_path.read_text())
    own = model.vae.vae.config
    model.vae.set_statistics(cfg.get("latents_mean", own.latents_mean), cfg.get("latents_std", own.latents_std))


def _adapt_siglip(tower: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a SigLIP/SigLIP2 checkpoint onto the adapted tower.

    Keys may or may not carry a ``vision_model.`` prefix (full ``SiglipModel`` files and older
    transformers versions do); text towers, the pooling head and layers beyond the config are
    dropped, and a pixel patch embedding (3×16×16) gives way to the tower's own latent one (1×1 or, for `tiny`, 2×2).
    """
    expected = tower.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("text_model.") or ".head." in key or key in ("logit_scale", "logit_bias"):
            continue
        bare = key.removeprefix("vision_model.")
        for candidate in (bare, "vision_model." + bare):
            if candidate in expected:
                out[candidate] = value
    for key in expected:
        if "patch_embedding" in key and (key not in out or out[key].shape != expected[key].shape):
            out[key] = expected[key]
    return out


def _adapt_llm(llm: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Grow the embedding rows for TUNA's added special tokens; fill tied weights."""
    expected = llm.state_dict()
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        if key in state and key in expected and state[key].shape[0] < expected[key].shape[0]:
            grown = expected[key].clone()
            grown[: state[key].shape[0]] = state[key]
            state[key] = grown
    if "lm_head.weight" in expected and "lm_head.weight" not in state and llm.config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def parameter_counts(model: TunaModel) -> dict[str, int]:
    """Parameters per part (shared tensors counted once)."""
    return {name: sum(p.numel() for p in part.parameters()) for name, part in model.parts().items()}

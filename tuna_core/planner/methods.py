"""Memory optimisation methods the planner profiles and the training loop / pipeline switch on.

A method is a named set of techniques:

    ckpt          activation checkpointing of the LLM, the SigLIP tower and the flow head
    int8          8-bit weights (optimum-quanto qint8, per output channel) for every Linear
    offload       weights live on the CPU; accelerate's hooks bring each module to the device
    offload_act   tensors saved for backward go to (pinned) CPU memory: autograd's save_on_cpu

Not every method makes sense for every task and device, and `not_applicable` says why in one
line instead of profiling a method that cannot change anything. In particular every offload is
a no-op for memory on CPU (the "offloaded" copy lives in the same RAM), so the planner reports
it as not applicable there rather than faking a number.

Usage (training loop or pipeline), in place and before the optimizer is built:

    apply_method(model, "ckpt", device="cuda")
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn

from tuna_core.model import TunaModel


class Technique(StrEnum):
    CHECKPOINT = "ckpt"
    INT8 = "int8"
    OFFLOAD_WEIGHTS = "offload"
    OFFLOAD_ACTIVATIONS = "offload_act"


class Task(StrEnum):
    TRAIN = "train"
    T2I = "t2i"
    CHAT = "chat"


@dataclass(frozen=True)
class Method:
    """A named combination of techniques and a one-line description for tables and docs."""

    name: str
    techniques: frozenset[Technique]
    description: str

    def uses(self, technique: Technique) -> bool:
        return technique in self.techniques


def _method(name: str, description: str) -> Method:
    techniques = frozenset(Technique(part) for part in name.split("+")) if name != "none" else frozenset()
    return Method(name, techniques, description)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        _method("none", "plain fp32/bf16 weights, everything on the device"),
        _method("ckpt", "recompute LLM, SigLIP and flow-head blocks in backward"),
        _method("offload_act", "saved activations in pinned CPU memory"),
        _method("ckpt+offload_act", "checkpointing, and the few saved block inputs on the CPU"),
        _method("int8", "8-bit Linear weights (optimum-quanto qint8)"),
        _method("offload", "weights on the CPU, streamed per module (accelerate.cpu_offload)"),
    )
}

# Why a technique cannot serve a task; checked in this order, the first reason wins.
_TASK_REASONS: dict[tuple[Technique, str], str] = {
    (
        Technique.CHECKPOINT,
        "inference",
    ): "inference keeps no activations for backward, so there is nothing to recompute",
    (
        Technique.OFFLOAD_ACTIVATIONS,
        "inference",
    ): "inference saves no tensors for backward, so there is nothing to offload",
    (
        Technique.INT8,
        "train",
    ): "int8 weights are frozen (no gradients, no optimizer update); training needs float weights",
    (Technique.OFFLOAD_WEIGHTS, "train"): (
        "accelerate.cpu_offload restores weights from its CPU copy at every forward, so optimizer updates "
        "would be lost; use offload_act for training"
    ),
}


def method(name: str) -> Method:
    """Look a method up by name; unknown names raise with the list of choices."""
    if name not in METHODS:
        raise ValueError(f"unknown memory method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def not_applicable(name: str, task: str, device: str | torch.device) -> str | None:
    """Why `name` cannot help `task` on `device`, or None when it is worth profiling."""
    m = method(name)
    kind = "train" if Task(task) is Task.TRAIN else "inference"
    for technique in sorted(m.techniques, key=lambda t: t.value):
        reason = _TASK_REASONS.get((technique, kind))
        if reason:
            return reason
    offloads = m.uses(Technique.OFFLOAD_WEIGHTS) or m.uses(Technique.OFFLOAD_ACTIVATIONS)
    if offloads and torch.device(device).type == "cpu":
        return "offloading to CPU memory from CPU memory saves nothing; it only matters on a GPU"
    return None


def methods_for(task: str, device: str | torch.device) -> list[str]:
    """The methods worth profiling for `task` on `device`, in table order."""
    return [name for name in METHODS if not_applicable(name, task, device) is None]


def apply_method(model: TunaModel, name: str, *, device: str | torch.device = "cpu") -> None:
    """Switch method `name` on for `model` and place it on `device`, in place, for good.

    Everything lives in the model (flags, quantized weights, hooks), so a training loop or a
    pipeline needs no other change. The model should still be on the CPU when `offload` is
    applied: the hooks keep the CPU copy and move one module at a time. Methods that are no-ops
    for memory on `device` raise instead of silently doing nothing (see `not_applicable`).
    """
    m = method(name)
    device = torch.device(device)
    offloads = m.uses(Technique.OFFLOAD_WEIGHTS) or m.uses(Technique.OFFLOAD_ACTIVATIONS)
    if offloads and device.type == "cpu":
        raise ValueError(
            f"method {name!r} offloads to CPU memory, which saves nothing on device {device}; use a GPU or 'none'"
        )
    if m.uses(Technique.INT8):
        quantize_weights(model)
    if m.uses(Technique.CHECKPOINT):
        enable_checkpointing(model)
    if m.uses(Technique.OFFLOAD_ACTIVATIONS):
        offload_activations(model, pin_memory=device.type == "cuda")
    if m.uses(Technique.OFFLOAD_WEIGHTS):
        offload_weights(model, device)
    else:
        model.to(device)


def offload_activations(model: nn.Module, *, pin_memory: bool = True) -> None:
    """Every forward of `model` runs under `torch.autograd.graph.save_on_cpu`.

    The context is entered by a forward pre-hook and left by a forward hook that also runs when
    the forward raises, so the autograd hook stack never leaks. Tensors saved in the forward go
    to (pinned) CPU memory and come back in backward, wherever backward is called.
    """
    contexts: list[torch.autograd.graph.save_on_cpu] = []

    def enter(module: nn.Module, args: tuple) -> None:
        contexts.append(torch.autograd.graph.save_on_cpu(pin_memory=pin_memory))
        contexts[-1].__enter__()

    def leave(module: nn.Module, args: tuple, output: object) -> None:
        contexts.pop().__exit__(None, None, None)

    model.register_forward_pre_hook(enter)
    model.register_forward_hook(leave, always_call=True)


def enable_checkpointing(model: TunaModel) -> None:
    """Recompute the LLM's decoder layers, the SigLIP encoder layers and the flow-head blocks.

    transformers 5 renamed `gradient_checkpointing_enable` to `activation_checkpointing_enable`
    (the old name warns and will go in v6); both do the same.

    Non-reentrant checkpointing: it works when only some inputs need gradients (frozen parts)
    and with `save_on_cpu`. It is active only in training mode with gradients enabled.
    """
    kwargs = {"use_reentrant": False}
    model.llm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    model.llm.config.use_cache = False  # a cache is useless when training and conflicts with recomputation
    model.rep_encoder.tower.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    model.flow_head.gradient_checkpointing = True


def quantize_weights(model: TunaModel) -> None:
    """Replace every Linear weight of the LLM, SigLIP tower, connector and heads by qint8.

    The Wan VAE is left alone (its 3D convolutions have no quanto module) and so is a tied
    `lm_head`: quantizing it would keep a float embedding *and* add an int8 copy.
    """
    from optimum.quanto import freeze, qint8, quantize

    exclude = ["lm_head"] if model.llm.config.tie_word_embeddings else None
    for part in (model.llm, model.rep_encoder.tower, model.connector, model.flow_head, model.time_embed):
        quantize(part, weights=qint8, exclude=exclude if part is model.llm else None)
        freeze(part)


def offload_weights(model: TunaModel, device: str | torch.device) -> None:
    """Keep the weights of the VAE, SigLIP tower, LLM and flow head on the CPU (accelerate hooks).

    The connector and the time embedder stay on `device`: they are small, and `model.device`
    reads the connector, so the pipeline keeps sending its inputs to the right place.
    Does not compose with `int8`: accelerate rebuilds parameters by class and cannot rebuild
    optimum-quanto's tensors, so that combination is not offered.
    """
    from accelerate import cpu_offload

    device = torch.device(device)
    model.to("cpu")
    for part in (model.vae.vae, model.rep_encoder.tower, model.llm, model.flow_head):
        cpu_offload(part, execution_device=device)
    for part in (model.connector, model.time_embed):
        part.to(device)
    for name, buffer in model.vae.named_buffers(recurse=False):  # latent mean/std; the VAE itself stays hooked
        setattr(model.vae, name, buffer.to(device))


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of the module's weights as stored: int8 tensors count one byte plus their scales.

    Reads `state_dict()` (optimum-quanto stores `weight._data` int8 and `weight._scale` there)
    and counts each storage once, so tied weights are not counted twice.
    """
    seen: set[int] = set()
    total = 0
    for tensor in module.state_dict().values():
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total

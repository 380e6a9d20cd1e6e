"""Torch-TensorRT's ahead-of-time path: `torch.export` → `torch_tensorrt.dynamo.compile` → `.pt2`.

One engine per bucket (frames × height × width), dynamic in the batch only: the Wan VAE's
feature-cache loop runs once per frame chunk, so the frame count must be a constant of the
graph, and the SigLIP position table is interpolated for the latent grid at trace time.
Exporting unrolls the loop; the cache list it threads through the blocks is Python state
that never reaches the graph.

Two settings matter for correctness, not speed:
- ``attn_bias_is_causal=False``. Torch-TensorRT's default (True) lets a lowering pass replace an
  efficient-attention bias by ``is_causal=True``, which is right for a decoder LLM's mask and
  wrong for every attention here (SigLIP and the VAE's mid-block attend in both directions).
  `causal_attention_nodes` also checks the exported graph before building.
- Precision: 2.13 builds strongly typed networks only (no ``enabled_precisions``), so the
  engine runs in the dtypes the graph carries; the caller casts the module beforehand.

torch_tensorrt is imported only inside these functions: it is GPU-only and never a CPU requirement.
"""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

SETTINGS: dict[str, Any] = {
    "min_block_size": 1,  # small blocks too: a torch segment between engines costs a round trip
    "attn_bias_is_causal": False,  # keep attention bidirectional (see module docstring)
    "truncate_double": True,
    "optimization_level": 3,
}
SETTINGS_ID = json.dumps(SETTINGS, sort_keys=True)
_CAUSAL_ARGUMENT = "is_causal"


def unavailable_reason(device: torch.device) -> str | None:
    """Why TensorRT cannot build here (one phrase), or None when it can."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if device.type != "cuda":
        return f"the model is on {device}, not on a CUDA device"
    if importlib.util.find_spec("torch_tensorrt") is None:
        return "torch-tensorrt is not installed (pip install -r requirements-gpu.txt)"
    try:
        import torch_tensorrt  # noqa: F401
    except (ImportError, OSError, RuntimeError) as err:  # a torch/TensorRT version mismatch fails here
        return f"torch_tensorrt does not import ({type(err).__name__}: {first_line(err)})"
    return None


def library_version() -> str:
    try:
        return metadata.version("torch-tensorrt")
    except metadata.PackageNotFoundError:
        return "not installed"


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def causal_attention_nodes(graph: torch.fx.GraphModule) -> list[str]:
    """Names of attention calls in `graph` that are causal (``is_causal`` resolves to True).

    Reads the operator schema, so it covers ``aten.scaled_dot_product_attention`` and the fused
    variants a lowering may produce (flash, efficient, cuDNN), wherever ``is_causal`` sits.
    """
    found = []
    for node in graph.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None:
            continue
        names = [arg.name for arg in schema.arguments]
        if _CAUSAL_ARGUMENT not in names:
            continue
        index = names.index(_CAUSAL_ARGUMENT)
        if index < len(node.args):
            value = node.args[index]
        else:
            value = node.kwargs.get(_CAUSAL_ARGUMENT, schema.arguments[index].default_value)
        if value is True:
            found.append(node.name)
    return found


def export_unit(module: nn.Module, example: torch.Tensor, max_batch: int) -> torch.export.ExportedProgram:
    """`torch.export` the unit for `example`'s per-sample shape, batch dynamic in [1, max_batch].

    The example batch must be ≥ 2 when the batch is dynamic: export specialises a size-1 axis.
    """
    example, dynamic = _dynamic_batch(example, max_batch)
    with torch.no_grad():
        return torch.export.export(module, (example,), dynamic_shapes=dynamic)


def build_engine(module: nn.Module, example: torch.Tensor, *, opt_batch: int, max_batch: int) -> nn.Module:
    """Export, check attention stays bidirectional, and compile to a TensorRT-backed module."""
    import torch_tensorrt

    program = export_unit(module, example, max_batch)
    causal = causal_attention_nodes(program.graph_module)
    if causal:
        raise RuntimeError(f"the exported graph has causal attention at {', '.join(causal)}; expected none")
    per_sample = tuple(example.shape[1:])
    spec = torch_tensorrt.Input(
        min_shape=(1, *per_sample),
        opt_shape=(opt_batch, *per_sample),
        max_shape=(max_batch, *per_sample),
        dtype=example.dtype,
    )
    with torch.no_grad():
        return torch_tensorrt.dynamo.compile(program, arg_inputs=[spec], device=example.device, **SETTINGS)


def save_engine(engine: nn.Module, path: Path, example: torch.Tensor, max_batch: int) -> None:
    """Serialise as an ExportedProgram (engines ride in it as ``tensorrt.execute_engine`` nodes)."""
    import torch_tensorrt

    example, dynamic = _dynamic_batch(example, max_batch)
    torch_tensorrt.save(
        engine, str(path), output_format="exported_program", arg_inputs=[example], dynamic_shapes=dynamic
    )


def load_engine(path: Path) -> nn.Module:
    """Load a saved engine; no TensorRT build happens here."""
    import torch_tensorrt

    return torch_tensorrt.load(str(path)).module()


def _dynamic_batch(example: torch.Tensor, max_batch: int) -> tuple[torch.Tensor, Any]:
    """The batch axis as a `torch.export.Dim` (None when it is fixed at 1), with an example of batch ≥ 2."""
    if max_batch == 1:
        return example, None
    if example.shape[0] < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    return example, ({0: torch.export.Dim("batch", min=1, max=max_batch)},)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no message"

"""Compiled back-ends for TUNA's visual units: Torch-TensorRT, torch.compile, eager.

    from engines import build_units
    units = build_units(model)                 # backend="auto": tensorrt → torch.compile → eager
    pipeline = TunaPipeline(model, tokenizer, units=units)
    units.backends  # {"encoder": "tensorrt (cached)", "visual": "tensorrt", "decoder": "eager", ...}

The three units are the VAE encoder, the representation encoder + connector (every denoising
step) and the VAE decoder. TensorRT engines are cached on disk (``$TUNA_ENGINE_CACHE`` or
``~/.cache/tuna_studio/engines``), and every compiled unit must match eager before it is used.
"""

from engines.backends import BACKENDS, CHOICES, UnavailableError, build_unit, build_units
from engines.parity import ParityError
from engines.units import Bucket, UnitSpec, unit_specs

__all__ = [
    "BACKENDS",
    "CHOICES",
    "Bucket",
    "ParityError",
    "UnavailableError",
    "UnitSpec",
    "build_unit",
    "build_units",
    "unit_specs",
]

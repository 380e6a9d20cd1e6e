"""The on-disk engine cache: where engines live and the key that says an engine still fits.

A TensorRT engine is only valid for the weights, input shape, precision, library versions and
GPU it was built for; every one of those goes into the key, so a change in any of them misses
the cache instead of loading an engine that computes something else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "TUNA_ENGINE_CACHE"
CACHE_FORMAT = 1  # bump when what is saved, or how it is built, changes


def default_cache_dir() -> Path:
    """``$TUNA_ENGINE_CACHE`` if set, else ``~/.cache/tuna_studio/engines``."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "tuna_studio" / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; two keys are equal exactly when an engine can be reused."""

    unit: str
    weights: str  # WeightsHash of the unit's module
    input_shape: tuple[int, ...]  # per sample, without the batch dimension
    batch: tuple[int, int, int]  # TensorRT optimisation profile: min, opt, max
    dtype: str
    torch: str
    torch_tensorrt: str
    gpu: str
    settings: str  # the build settings, so changing them rebuilds
    format: int = CACHE_FORMAT

    @property
    def digest(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def path(self, root: Path) -> Path:
        return root / f"{self.unit}-{self.digest}.pt2"  # torch.export wants the .pt2 suffix


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` on a temporary file beside `path`, then rename: a crash never leaves half an engine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

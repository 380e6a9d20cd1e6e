"""Reading and writing images and videos, with the checks that turn bad files into clear errors.

PNGs carry the prompt, seed and settings as text chunks; MP4s are H.264 via moviepy; uploaded
videos are read with OpenCV. Every failure is a ``MediaError`` with one plain sentence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import torch
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from tuna_core.config import Limits

IMAGE_MODES = ("RGB", "RGBA", "L", "LA", "P")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


class MediaError(ValueError):
    """An unreadable, unsupported or oversized file; the message says which and why."""


def to_rgb(image: Image.Image | np.ndarray, limits: Limits = Limits()) -> Image.Image:
    """Any supported image (PIL or HxWx3 uint8 array) → RGB PIL image; transparency over white."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise MediaError(f"expected an image array of shape (H, W, 3) uint8, got {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    if image.mode not in IMAGE_MODES:
        raise MediaError(f"unsupported image mode {image.mode!r}; use an RGB, RGBA, grayscale or palette image")
    if image.width * image.height > limits.max_upload_pixels:
        raise MediaError(
            f"image is {image.width}×{image.height}, over the {limits.max_upload_pixels:,}-pixel limit; "
            "downscale it first"
        )
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) images or (B, T, H, W, 3) videos → float (B, 3, T, H, W) in [-1, 1],
    the VAE's input (an image is a one-frame video)."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    x = x[:, None] if x.ndim == 4 else x
    return x.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def to_frames(pixels: torch.Tensor) -> np.ndarray:
    """The inverse of `to_pixels`: float (B, 3, T, H, W) in [-1, 1] → uint8 (B, T, H, W, 3)."""
    frames = ((pixels.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return frames.permute(0, 2, 3, 4, 1).numpy()


def load_image(path: str | Path, limits: Limits = Limits()) -> Image.Image:
    path = Path(path)
    _check_file(path, IMAGE_SUFFIXES, "image", limits)
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img, limits)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise MediaError(f"{path.name} is not a readable image ({type(err).__name__}); is the file corrupt?") from None


def load_video(path: str | Path, limits: Limits = Limits()) -> tuple[np.ndarray, float]:
    """Read all frames (T, H, W, 3) uint8 RGB and the frame rate with OpenCV."""
    import cv2

    path = Path(path)
    _check_file(path, VIDEO_SUFFIXES, "video", limits)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MediaError(f"{path.name} is not a readable video; is the file corrupt?")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        if fps > 0 and count / fps > limits.max_video_seconds:
            raise MediaError(
                f"{path.name} lasts {count / fps:.0f} s, over the {limits.max_video_seconds:.0f} s limit; trim it first"
            )
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.shape[0] * frame.shape[1] > limits.max_upload_pixels:
                raise MediaError(f"{path.name} frames are {frame.shape[1]}×{frame.shape[0]}, over the pixel limit")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if len(frames) > limits.max_video_seconds * 120:
                raise MediaError(f"{path.name} has too many frames; trim it to {limits.max_video_seconds:.0f} s")
    finally:
        cap.release()
    if not frames:
        raise MediaError(f"{path.name} has no decodable frames; is the file corrupt?")
    return np.stack(frames), float(fps) if fps > 0 else 8.0


def _check_file(path: Path, suffixes: tuple[str, ...], kind: str, limits: Limits) -> None:
    if not path.exists():
        raise MediaError(f"{kind} file not found: {path}")
    if path.suffix.lower() not in suffixes:
        raise MediaError(f"{path.name}: unsupported {kind} type {path.suffix or '(none)'}; use {', '.join(suffixes)}")
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise MediaError(
            f"{path.name} is {size / 2**20:.0f} MiB, over the {limits.max_upload_bytes / 2**20:.0f} MiB limit"
        )
    if size == 0:
        raise MediaError(f"{path.name} is empty")


def save_png(image: Image.Image, path: str | Path, settings: dict[str, Any]) -> Path:
    """Save with each setting as a PNG text chunk (and all of them as JSON under 'tuna')."""
    info = PngImagePlugin.PngInfo()
    for key, value in settings.items():
        info.add_text(key, str(value))
    info.add_text("tuna", json.dumps(settings, sort_keys=True))
    path = Path(path)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
    return path


def png_settings(path: str | Path) -> dict[str, Any]:
    with Image.open(path) as img:
        return json.loads(img.text["tuna"])


def save_mp4(frames: np.ndarray, path: str | Path, fps: int, settings: dict[str, Any] | None = None) -> Path:
    """Write (T, H, W, 3) uint8 frames as H.264 MP4 (yuv420p, so browsers play it)."""
    from moviepy import ImageSequenceClip

    path = Path(path)
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:  # yuv420p needs even sides
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    clip = ImageSequenceClip(list(frames), fps=fps)
    comment = json.dumps(settings or {}, sort_keys=True)

    def write(tmp: Path) -> None:
        clip.write_videofile(
            str(tmp),
            codec="libx264",
            audio=False,
            logger=None,
            ffmpeg_params=["-pix_fmt", "yuv420p", "-metadata", f"comment={comment}"],
        )

    atomic_write(path, write)
    return path


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary sibling (same extension, so writers pick the format) and rename:
    a crash never leaves half a file where a finished one should be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid4().hex[:6]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

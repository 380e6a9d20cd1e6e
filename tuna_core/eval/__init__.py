"""Evaluation: reading Shapes World scenes back from pixels."""

from tuna_core.eval.detector import detect_scene, detect_video

__all__ = ["detect_scene", "detect_video"]

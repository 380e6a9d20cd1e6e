"""PAPAYA memory planning: methods, a subprocess profiler, the linear fit and the recommendation.

Entry points for the rest of TUNA Studio:

    apply_method(model, name, device=...)            training loop and pipeline: switch a method on
    recommend_for_serving(preset_or_model, budget)   app: which serving method fits a GPU (estimate)
    method_for_training(preset, "8GiB", device)      train --memory-budget: a callable applying the choice
    cli.main(argv)                                   `python -m tuna_core plan ...`
"""

from tuna_core.planner.estimate import (
    ServingChoice,
    TrainingMethod,
    method_for_training,
    recommend_for_serving,
    recommend_for_training,
)
from tuna_core.planner.methods import METHODS, apply_method, methods_for, not_applicable

__all__ = [
    "METHODS",
    "ServingChoice",
    "TrainingMethod",
    "apply_method",
    "method_for_training",
    "methods_for",
    "not_applicable",
    "recommend_for_serving",
    "recommend_for_training",
]

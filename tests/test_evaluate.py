"""The evaluation judges: an oracle pipeline must score 1.0 everywhere, a wrong one must not."""

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from tuna_core.config import ModelConfig, SamplerConfig
from tuna_core.data.tasks import answer_question, apply_edit, edit_kind
from tuna_core.data.world import (
    Scene,
    ShapeObject,
    caption,
    parse_prompt,
    render_image,
    render_video,
    sample_scene,
)
from tuna_core.eval.detector import detect_scene, detect_video
from tuna_core.eval.evaluate import METRICS, evaluate, format_table, video_matches


@dataclass
class Output:
    images: list | None = None
    frames: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


def scene_of(prompt: str) -> Scene:
    spec = parse_prompt(prompt)
    objects = tuple(
        ShapeObject(o.shape, o.color, o.size or "small", o.cell, direction=o.direction) for o in spec.objects
    )
    return Scene(spec.background or "black", objects)


class OraclePipeline:
    """Draws exactly what a prompt says and answers from what it sees."""

    config = ModelConfig.tiny()
    defaults = SamplerConfig.for_model(config)
    model_id = "oracle"

    def text_to_image(self, prompt: str, seed: int = 0) -> Output:
        return Output(images=[Image.fromarray(render_image(scene_of(prompt)))])

    def text_to_video(self, prompt: str, seed: int = 0) -> Output:
        return Output(frames=render_video(scene_of(prompt)))

    def edit(self, image: np.ndarray, instruction: str, seed: int = 0) -> Output:
        return Output(images=[Image.fromarray(render_image(apply_edit(detect_scene(np.asarray(image)), instruction)))])

    def chat(self, messages: list[dict], images=None, videos=None) -> str:
        scene = detect_scene(np.asarray(images[0])) if images else detect_video(videos[0])
        return answer_question(scene, messages[-1]["content"])


class BlankPipeline(OraclePipeline):
    """Always a grey canvas and the same answer."""

    model_id = "blank"

    def text_to_image(self, prompt: str, seed: int = 0) -> Output:
        return Output(images=[Image.new("RGB", (64, 64), (128, 128, 128))])

    def text_to_video(self, prompt: str, seed: int = 0) -> Output:
        return Output(frames=np.full((17, 64, 64, 3), 128, np.uint8))

    def edit(self, image: np.ndarray, instruction: str, seed: int = 0) -> Output:
        return self.text_to_image(instruction)

    def chat(self, messages: list[dict], images=None, videos=None) -> str:
        return "red"


def test_an_oracle_scores_one_on_every_metric(tmp_path):
    report = evaluate(OraclePipeline(), n=12, seed=7, contact_sheet=tmp_path / "sheet.png")
    assert {m: r["accuracy"] for m, r in report["metrics"].items()} == {m: 1.0 for m in METRICS}
    for metric in ("t2i", "edit", "video_direction"):
        assert report["metrics"][metric]["objects_placed"] == report["metrics"][metric]["objects_exact"] == 1.0
    assert report["metrics"]["image_qa"]["objects_placed"] is None  # answers name no objects to draw
    assert (tmp_path / "sheet.png").stat().st_size > 0


class RecolorBlindPipeline(OraclePipeline):
    """Applies every edit but a recolour, which it returns unchanged."""

    def edit(self, image: np.ndarray, instruction: str, seed: int = 0) -> Output:
        if edit_kind(instruction) == "recolor":
            return Output(images=[Image.fromarray(np.asarray(image))])
        return super().edit(image, instruction, seed)


def test_edits_are_also_counted_by_kind():
    report = evaluate(RecolorBlindPipeline(), n=40, seed=4, metrics=("edit",))
    by_kind = report["metrics"]["edit"]["by_kind"]
    assert set(by_kind) == {"add", "move", "recolor", "remove"}
    assert sum(c["n"] for c in by_kind.values()) == 40
    assert by_kind["recolor"]["right"] == 0 < by_kind["recolor"]["n"]
    assert all(c["right"] == c["n"] for k, c in by_kind.items() if k != "recolor")
    assert round(report["metrics"]["edit"]["accuracy"] * 40) == 40 - by_kind["recolor"]["n"]
    assert f"edit right by kind: add {by_kind['add']['n']}/{by_kind['add']['n']}, " in format_table(report)


class WrongRecolourPlans(OraclePipeline):
    """Thinks first: plans every edit right but a recolour (it plans the source), and draws the right result."""

    def edit(self, image: np.ndarray, instruction: str, seed: int = 0) -> Output:
        source = detect_scene(np.asarray(image))
        plan = source if edit_kind(instruction) == "recolor" else apply_edit(source, instruction)
        return Output(super().edit(image, instruction, seed).images, settings={"thought": caption(plan)})


def test_a_thinking_edits_plan_is_scored_apart_from_its_drawing():
    report = evaluate(WrongRecolourPlans(), n=40, seed=4, metrics=("edit",))
    plans, recolours = report["metrics"]["edit"]["plans"], report["metrics"]["edit"]["by_kind"]["recolor"]["n"]
    assert plans == {"n": 40, "right": 40 - recolours, "drawn_right": 40 - recolours}
    assert f"edit plans right: {40 - recolours}/40, and drawn right from a right plan" in format_table(report)
    assert "plans" not in evaluate(OraclePipeline(), n=4, seed=4, metrics=("edit",))["metrics"]["edit"]


def test_a_blank_model_scores_low_and_its_failures_are_listed():
    report = evaluate(BlankPipeline(), n=12, seed=7)
    assert all(r["accuracy"] <= 0.25 for r in report["metrics"].values())
    assert report["metrics"]["t2i"]["failures"][0]["got"] == "no shapes on a gray background"
    assert report["metrics"]["t2i"]["objects_placed"] == 0.0


class ShapeBlindPipeline(OraclePipeline):
    """Draws every object in its colour at its cell, but always as a square."""

    def text_to_image(self, prompt: str, seed: int = 0) -> Output:
        scene = scene_of(prompt)
        squares = tuple(ShapeObject("square", o.color, o.size, o.cell) for o in scene.objects)
        return Output(images=[Image.fromarray(render_image(Scene(scene.background, squares)))])


def test_objects_placed_counts_colour_at_cell_and_objects_exact_also_the_shape():
    report = evaluate(ShapeBlindPipeline(), n=20, seed=3, metrics=("t2i",))["metrics"]["t2i"]
    assert report["objects_placed"] == 1.0
    assert 0.0 < report["objects_exact"] < 1.0  # exactly the squares asked for
    assert report["accuracy"] < 1.0


def test_evaluation_items_are_the_same_for_the_same_seed_and_differ_across_seeds():
    seen = []
    evaluate(OraclePipeline(), n=3, seed=1, metrics=("image_qa",), on_trial=lambda t: seen.append(t.query))
    evaluate(OraclePipeline(), n=3, seed=1, metrics=("image_qa",), on_trial=lambda t: seen.append(t.query))
    evaluate(OraclePipeline(), n=3, seed=2, metrics=("image_qa",), on_trial=lambda t: seen.append(t.query))
    assert seen[:3] == seen[3:6] and seen[:3] != seen[6:]


def test_table_shows_accuracy_against_target():
    rows = {
        "t2i": {"accuracy": 0.5, "target": 0.85, "objects_placed": 0.75, "objects_exact": 0.625},
        "caption": {"accuracy": 0.25, "target": None, "objects_placed": None, "objects_exact": None},
    }
    sampler = asdict(SamplerConfig(steps=20, guidance=7.0, image_guidance=3.0))
    table = format_table({"model": "m", "n": 4, "seed": 0, "sampler": sampler, "metrics": rows})
    assert "20 euler steps, guidance 7.0, edits' image guidance 3.0" in table.splitlines()[0]
    assert "| t2i | 0.500 | ≥ 0.85 | 0.750 | 0.625 |" in table
    assert "| caption | 0.250 | — | — | — |" in table


def test_a_video_matches_its_scene_only_played_forwards():
    rng = np.random.default_rng(5)
    scene = next(s for s in (sample_scene(rng, video=True) for _ in range(50)) if any(o.direction for o in s.objects))
    frames = render_video(scene)
    assert video_matches(scene, detect_video(frames))
    assert not video_matches(scene, detect_video(frames[::-1]))  # every mover reversed, and it starts elsewhere
    assert not video_matches(scene, detect_video(np.repeat(frames[:1], len(frames), axis=0)))  # frozen: no motion

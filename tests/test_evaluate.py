"""The evaluation judges: an oracle pipeline must score 1.0 everywhere, a wrong one must not."""

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tuna_core.config import ModelConfig
from tuna_core.data.tasks import answer_question, apply_edit
from tuna_core.data.world import Scene, ShapeObject, parse_prompt, render_image, render_video, sample_scene
from tuna_core.eval.detector import detect_scene, detect_video
from tuna_core.eval.evaluate import METRICS, evaluate, format_table, video_matches


@dataclass
class Output:
    images: list | None = None
    frames: np.ndarray | None = None


def scene_of(prompt: str) -> Scene:
    spec = parse_prompt(prompt)
    objects = tuple(
        ShapeObject(o.shape, o.color, o.size or "small", o.cell, direction=o.direction) for o in spec.objects
    )
    return Scene(spec.background or "black", objects)


class OraclePipeline:
    """Draws exactly what a prompt says and answers from what it sees."""

    config = ModelConfig.tiny()
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
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_a_blank_model_scores_low_and_its_failures_are_listed():
    report = evaluate(BlankPipeline(), n=12, seed=7)
    assert all(r["accuracy"] <= 0.25 for r in report["metrics"].values())
    assert report["metrics"]["t2i"]["failures"][0]["got"] == "no shapes on a gray background"


def test_evaluation_items_are_the_same_for_the_same_seed_and_differ_across_seeds():
    seen = []
    evaluate(OraclePipeline(), n=3, seed=1, metrics=("image_qa",), on_trial=lambda t: seen.append(t.query))
    evaluate(OraclePipeline(), n=3, seed=1, metrics=("image_qa",), on_trial=lambda t: seen.append(t.query))
    evaluate(OraclePipeline(), n=3, seed=2, metrics=("image_qa",), on_trial=lambda t: seen.append(t.query))
    assert seen[:3] == seen[3:6] and seen[:3] != seen[6:]


def test_table_shows_accuracy_against_target():
    report = {"model": "m", "n": 4, "seed": 0, "metrics": {"t2i": {"accuracy": 0.5, "target": 0.85}}}
    assert "| t2i | 0.500 | ≥ 0.85 |" in format_table(report)


def test_a_video_matches_its_scene_only_played_forwards():
    rng = np.random.default_rng(5)
    scene = next(s for s in (sample_scene(rng, video=True) for _ in range(50)) if any(o.direction for o in s.objects))
    frames = render_video(scene)
    assert video_matches(scene, detect_video(frames))
    assert not video_matches(scene, detect_video(frames[::-1]))  # every mover reversed, and it starts elsewhere
    assert not video_matches(scene, detect_video(np.repeat(frames[:1], len(frames), axis=0)))  # frozen: no motion

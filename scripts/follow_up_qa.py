"""Questions asked alone vs. as a chat's second turn, on the same fresh scenes and videos.

The app's Chat keeps the conversation, so a follow-up sees an earlier question and answer; until
the eighth run of the recipe (`--follow-ups 0.5`) the bundled model was trained on one question
per sample. This measures what a second turn costs:

    python scripts/follow_up_qa.py [--model DIR] [--n 100] [--seed 12345]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuna_core.data.tasks import ask
from tuna_core.data.world import render_image, render_video, sample_scene
from tuna_core.pipeline import TunaPipeline

FOLLOW_UP_NS = 7  # keeps these scenes apart from `eval`'s
VIDEO_NS = 8  # ... and these videos


def score(pipe: TunaPipeline, rng: np.random.Generator, video: bool, right: dict[str, int]) -> None:
    """Ask one fresh scene's questions alone and after a correctly answered earlier question."""
    scene = sample_scene(rng, video=video)
    task = "video_qa" if video else "qa"
    question, answer = ask(task, scene, rng)
    earlier, earlier_answer = ask(task, scene, rng)
    if video:
        media = {"videos": [render_video(scene, pipe.config.image_size)]}
        asked = {"video qa": (question, answer)}
    else:
        media = {"images": [render_image(scene, pipe.config.image_size)]}
        asked = {"qa": (question, answer), "caption": ask("caption", scene, rng)}
    history = [{"role": "user", "content": earlier}, {"role": "assistant", "content": earlier_answer}]
    for name, (q, want) in asked.items():
        for when, before in (("alone", []), ("second", history)):
            got = pipe.chat([*before, {"role": "user", "content": q}], **media)
            right[f"{name} {when}"] = right.get(f"{name} {when}", 0) + (got.strip().lower() == want)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="assets/tuna-tiny", help="checkpoint folder")
    p.add_argument("--n", type=int, default=100, help="scenes, and as many videos")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (never used in training)")
    args = p.parse_args()
    pipe = TunaPipeline.from_pretrained(args.model)
    right: dict[str, int] = {}
    for i in tqdm(range(args.n), desc="follow-up"):
        score(pipe, np.random.default_rng([args.seed, FOLLOW_UP_NS, i]), False, right)
        score(pipe, np.random.default_rng([args.seed, VIDEO_NS, i]), True, right)
    print(f"{pipe.model_id}, n={args.n}, seed {args.seed}")
    for name, count in right.items():
        print(f"  {name:<17} {count / args.n:.2f}")


if __name__ == "__main__":
    main()

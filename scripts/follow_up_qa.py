"""Image QA and captions asked alone vs. as a chat's second turn, on the same fresh scenes.

The bundled model was trained on one question per sample; the app's Chat keeps the conversation,
so a follow-up sees an earlier question and answer. This measures what that costs:

    python scripts/follow_up_qa.py [--model DIR] [--n 100] [--seed 12345]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuna_core.data.tasks import DESCRIBE_IMAGE, sample_question
from tuna_core.data.world import caption, render_image, sample_scene
from tuna_core.pipeline import TunaPipeline

FOLLOW_UP_NS = 7  # keeps these scenes apart from `eval`'s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="assets/tuna-tiny", help="checkpoint folder")
    p.add_argument("--n", type=int, default=100, help="scenes")
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (never used in training)")
    args = p.parse_args()
    pipe = TunaPipeline.from_pretrained(args.model)
    right = dict.fromkeys(("qa alone", "caption alone", "qa second", "caption second"), 0)
    for i in tqdm(range(args.n), desc="follow-up"):
        rng = np.random.default_rng([args.seed, FOLLOW_UP_NS, i])
        scene = sample_scene(rng)
        question, answer = sample_question(scene, rng)
        earlier, earlier_answer = sample_question(scene, rng)  # asked first, answered correctly
        image = [render_image(scene, pipe.config.image_size)]
        history = [{"role": "user", "content": earlier}, {"role": "assistant", "content": earlier_answer}]
        for name, q, want in (("qa", question, answer), ("caption", DESCRIBE_IMAGE, caption(scene))):
            for when, before in (("alone", []), ("second", history)):
                got = pipe.chat([*before, {"role": "user", "content": q}], image)
                right[f"{name} {when}"] += got.strip().lower() == want
    print(f"{pipe.model_id}, n={args.n}, seed {args.seed}")
    for name, count in right.items():
        print(f"  {name:<15} {count / args.n:.2f}")


if __name__ == "__main__":
    main()

"""Entry point: `python -m tuna_core …` (see tuna_core.cli)."""

import os
import sys

# Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of two
# busy processes starve each other (a training step measured 20 s instead of 2.4 s). Training owns
# the machine, and there spinning saves a wake-up per small op: with spinning threads and denormals
# flushed on every thread a bf16 joint step took 2.8 s here, against 3.5 s with sleeping threads and
# the flush on the main thread only (the two were not timed apart). Must be set before torch loads
# its OpenMP runtime.
if sys.argv[1:2] != ["train"]:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tuna_core.cli import main

sys.exit(main())

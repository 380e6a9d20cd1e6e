"""Entry point: `python -m tuna_core …` (see tuna_core.cli)."""

import os
import sys

# Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of two
# busy processes starve each other (a training step measured 20 s instead of 2.4 s). Must be set
# before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tuna_core.cli import main

sys.exit(main())

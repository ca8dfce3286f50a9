"""Issue #35: a command loads only what it uses. `skinseg segment one.jpg -o m.png` spent about 2 s on imports
before its first image: the COCO writer's scipy.signal, the measurements' scipy and scikit-image, and sympy
(torch's `to_empty`, when the model was loaded)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

# What a plain segment must not load: each comes only with the option that uses it.
UNUSED_BY_PLAIN_SEGMENT = (
    "sympy",  # torch.nn.Module.to_empty (models.weights loads by assignment instead)
    "skinseg.inference.coco",  # --coco
    "scipy.signal",  # --coco (polygon tracing)
    "skinseg.measurement",  # --measure
    "scipy.spatial",  # --measure (convex hull)
    "scipy.ndimage",  # 0.3 s: post-processing loads its compiled labelling alone; a boundary offset, --measure
    "skinseg.inference.crops",  # --crops
    "skinseg.reporting.figures",  # --overlay
    "matplotlib",  # figures of train and evaluate
    "onnx",  # --backend onnx, export
    "onnxruntime",  # --backend onnx
    "skinseg.training.loop",  # train
    "skinseg.evaluation.scoring",  # evaluate
)


def test_a_plain_segment_loads_nothing_it_does_not_use(tmp_path):
    image = tmp_path / "one.png"
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(image)
    code = (
        "import sys\nfrom skinseg.cli import main\n"
        f"sys.argv = ['skinseg', 'segment', {str(image)!r}, '-o', {str(tmp_path / 'm.png')!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {UNUSED_BY_PLAIN_SEGMENT!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert (tmp_path / "m.png").exists(), done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

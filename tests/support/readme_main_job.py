"""The README's main job as CI runs it: the first code block under the heading that says "main job",
run exactly as written in a fresh virtual environment (by .ci/run), then its image checked.

    python -m tests.support.readme_main_job extract        # prints the block
    python -m tests.support.readme_main_job check out.png  # the image follows the demo layout

Keeping the commands in one place (the README) means the documentation cannot drift from what CI runs.
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_LAYOUT = os.path.join(ROOT, "example_workflows", "layouts", "demo_shapes.json")
MIN_VARIANCE_EXPLAINED = 0.3


def main_job_block(readme: str) -> str:
    m = re.search(r"^#+ [^\n]*main job[^\n]*\n(.*?)```[a-z]*\n(.*?)```", readme, re.S | re.I | re.M)
    if not m:
        raise SystemExit("README.md has no code block under a 'main job' heading")
    return m.group(2)


def check(image_path: str, layout_json: str = DEMO_LAYOUT) -> float:
    """The generated picture has the layout's size and follows its segments."""
    import numpy as np
    from PIL import Image

    from seg2any.layout.layout import load_layout_pair
    from training.metrics import segment_labels, variance_explained

    layout = load_layout_pair(layout_json)
    img = np.asarray(Image.open(image_path).convert("RGB"))
    if img.shape[:2] != (layout.height, layout.width):
        raise SystemExit(f"{image_path} is {img.shape[1]}x{img.shape[0]}, the layout {layout.width}x{layout.height}")
    score = variance_explained(img, segment_labels(layout))
    print(f"{image_path}: {img.shape[1]}x{img.shape[0]}, variance explained by the layout {score:.3f}")
    if score < MIN_VARIANCE_EXPLAINED:
        raise SystemExit(f"the image does not follow the layout (variance explained {score:.3f} < {MIN_VARIANCE_EXPLAINED})")
    return score


if __name__ == "__main__":
    if sys.argv[1:2] == ["extract"]:
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            sys.stdout.write(main_job_block(f.read()))
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
    else:
        raise SystemExit(__doc__)

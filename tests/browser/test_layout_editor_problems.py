"""The Layout Editor's problem line in the real frontend: an official PNG + JSON is imported by file
whose row 1 is a pole that covers no token centre and has an over-long caption (its colour sorts
after row 2's, so the old sorted-colour numbering called it "entity 2"), plus a few anti-aliased
pixels of an unlisted colour. The line must show the server's (the builder's) words naming
"entity 1", and a real pointer stroke that widens the pole must clear the vanished warning.
Screenshots under test-artifacts/browser/<frontend>/<test>/."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("selenium")

from tests.browser.test_layout_editor import add_editor, t5_count  # noqa: E402

LONG = "an extremely ornate and intricately detailed carved wooden totem pole with painted eagles, " * 3
POLE, WALL, STRAY = (250, 10, 10), (10, 10, 250), (7, 7, 7)
SIZE = 128  # no demo loader in the graph: the run renders 128x128, token centres at 8, 24, ..., 120


def write_pair(tmp_path):
    m = np.zeros((SIZE, SIZE, 3), np.uint8)
    m[:, :] = WALL
    m[:, 0:3] = POLE  # columns 0..2: no token column centre (8 + 16k)
    m[100, 60:65] = STRAY  # 5 anti-aliased pixels no segment lists
    png, js = tmp_path / "pole.png", tmp_path / "pole.json"
    Image.fromarray(m).save(png)
    spec = {
        "caption": "a courtyard",
        "segments_info": [{"color": list(POLE), "text": LONG.strip()}, {"color": list(WALL), "text": "a brick wall"}],
    }
    js.write_text(json.dumps(spec))
    return str(png), str(js)


def problems_line(ed, page, count, what):
    page.wait_for(
        f"(() => {{ const p = document.querySelector('.s2a-editor[data-node-id=\"{ed.id}\"] .s2a-problems'); "
        f"return p.dataset.source === 'server' && p.dataset.count === '{count}'; }})()",
        30,
        what,
    )
    page.settle()
    return ed.q(".s2a-problems").get_attribute("textContent")


def test_problem_line_names_row_1_in_the_runs_words(page, tmp_path):
    ed = add_editor(page)
    png, js = write_pair(tmp_path)
    ed.q(".s2a-import-input").send_keys(png + "\n" + js)
    page.wait_for(f"window.seg2anyLayoutEditors.get('{ed.id}').summary().entities.length === 2", 30, "import")
    text = problems_line(ed, page, 3, "the server's three problems")
    page.screenshot("row-1-vanished-and-over-long")
    pole = f"entity 1 (#fa0a0a) '{LONG.strip()[:37]}...'"  # the run's name: row 1, its colour, the prompt cut at 40
    assert f"{pole} covers no 16x16 token centre at 128x128: its caption will see no image token" in text
    assert f"{pole} has {t5_count(LONG)} T5 tokens, over 50: the builder refuses it; shorten it" in text
    assert "1 colour not in the table counts as background: [7, 7, 7] <0.1% of the pixels (5 pixels)" in text
    assert "entity 2" not in text  # the wall has no problem; the pole is never called entity 2
    # a real stroke: the rectangle tool paints row 1 (the active entity) over column 8, a token centre
    ed.tool("rect")
    ed.drag((0, 0), (12, 30))
    text = problems_line(ed, page, 2, "the vanished warning cleared after the stroke")
    page.screenshot("pole-widened-by-a-stroke")
    assert "covers no" not in text and f"{pole} has {t5_count(LONG)} T5 tokens" in text

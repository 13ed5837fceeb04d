"""The documentation's generated tables are what their generators print today (README links to both files)."""

from pathlib import Path

import pytest

from attnyolo.analysis.summary import zoo_markdown, zoo_names
from attnyolo.layers.registry import kinds_markdown
from attnyolo.layers.spellings import spellings_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_layers_doc_holds_the_generated_table_of_kinds():
    assert kinds_markdown() in (DOCS / "layers.md").read_text(), "regenerate: python tools/model_info.py table=layers"


def test_models_doc_holds_the_generated_table_of_layer_names():
    assert spellings_markdown() in (DOCS / "models.md").read_text(), "regenerate from spellings.spellings_markdown()"


@pytest.mark.parametrize("family", ["yolov8", "yolov5-classic", "yolox"])
def test_zoo_doc_rows_equal_the_generated_rows(family):
    # The n scale (Nano for YOLOX) of a family, built and measured now; a layer or parser change that moves a
    # parameter count or a placement shows up here until docs/zoo.md is regenerated.
    if family == "yolox":
        names = [n for n in zoo_names((), yolox=True) if n.startswith("yolox-nano")]
    else:
        names = zoo_names((family,), "n", yolox=False)
    doc = (DOCS / "zoo.md").read_text().splitlines()
    rows = list(zoo_markdown(names))
    assert len(rows) == len(names) + 2
    missing = [row for row in rows if row not in doc]
    assert not missing, f"docs/zoo.md differs from the generator (python tools/model_info.py table=zoo): {missing}"

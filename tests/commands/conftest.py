"""A small sample dataset shared by the tool tests (generated once per session, offline, in about a second)."""

import json

import pytest

from attnyolo.data.sample import make_sample_dataset


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """The sample dataset's data.yaml (12 val images, VOC XML with difficult flags, COCO JSON)."""
    return make_sample_dataset(tmp_path_factory.mktemp("sample"), n_train=1, n_val=12, imgsz=160, video=False)


@pytest.fixture(scope="session")
def perfect_predictions(sample_data, tmp_path_factory):
    """A COCO results file that repeats the val ground truth with score 0.9."""
    gt = json.loads((sample_data.parent / "annotations" / "instances_val.json").read_text())
    results = [{**{k: a[k] for k in ("image_id", "category_id", "bbox")}, "score": 0.9} for a in gt["annotations"]]
    path = tmp_path_factory.mktemp("predictions") / "perfect.json"
    path.write_text(json.dumps(results))
    return path

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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained 3-class detector of a few kilobytes, saved by Ultralytics' own YOLO.save (fast tool runs).

    Stock layers only: an attention layer's first forward pass would build the fused CPU kernels, which takes
    seconds; the tools' failure paths do not depend on the layers.
    """
    import yaml
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("tiny")
    cfg = {
        "nc": 3,
        "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "SPPF", [16, 5]]],
        "head": [[[2], 1, "Detect", ["nc"]]],
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    model = YOLO(folder / "tiny.yaml")
    model.model.names = {0: "circle", 1: "rectangle", 2: "triangle"}
    model.save(folder / "tiny.pt")
    return folder / "tiny.pt"

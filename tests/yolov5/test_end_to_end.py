"""Classic YOLOv5 through the tools: train with YOLOv5's recipe, fine-tune and validate a YOLOv5 best.pt, export."""

import json
import shutil

import pytest
import yaml
from yolov5_helpers import FIXTURES

from attnyolo.data.sample import make_sample_dataset

TINY = ["imgsz=64", "batch=4", "workers=0", "device=cpu", "plots=False"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The sample dataset (circle, rectangle, triangle: 3 classes, like the CA fork checkpoint)."""
    return make_sample_dataset(tmp_path_factory.mktemp("sample"), n_train=8, n_val=4, imgsz=96, video=False)


def test_train_uses_yolov5s_recipe_autoanchor_and_a_yolov5_best_pt_as_pretrained_weights(data, tmp_path, tool):
    r = tool(
        "train",
        f"model={FIXTURES / 'ca_fork_tiny.yaml'}",
        f"pretrained={FIXTURES / 'tiny_ca_fork.pt'}",
        f"data={data}",
        "epochs=1",
        "lr0=0.02",
        "obj=0.5",
        *TINY,
        f"project={tmp_path}",
        env={"YOLO_VERBOSE": "true"},  # Ultralytics' log, where the recipe is logged
    )
    assert r.returncode == 0, r.stderr[-4000:]
    log = r.stdout + r.stderr
    # every tensor of the fork's checkpoint lands in the model built from the fork's YAML (same classes: 3)
    line = next(ln for ln in log.splitlines() if ln.startswith("pretrained "))
    done, total = map(int, line.split("transferred ")[1].split(" ")[0].split("/"))
    assert done == total == 382, line
    assert "YOLOv5 recipe (hyp.scratch-low) for keys you did not set:" in log and "optimizer=SGD" in log
    assert "YOLOv5 loss gains for nc=3, imgsz=64: box=0.05, obj=0.005, cls=0.01875" in log  # obj 0.5 * (64/640)^2
    assert "AutoAnchor:" in log and "best possible recall" in log
    run = next(tmp_path.glob("*/weights/best.pt")).parents[1]
    args = yaml.safe_load((run / "args.yaml").read_text())
    assert (args["optimizer"], args["lr0"], args["box"], args["warmup_epochs"]) == ("SGD", 0.02, 0.05, 3.0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"coco", "voc"} <= set(metrics)  # pycocotools and the VOC devkit scored the classic best.pt
    import torch

    model = torch.load(run / "weights" / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert model.yaml["hyp"] == {"obj": 0.5}  # kept for resume
    assert model.yolov5_hyp["obj"] == pytest.approx(0.005) and model.yolov5_hyp["cls"] == pytest.approx(0.01875)


@pytest.mark.parametrize("checkpoint", ["tiny_ca_fork.pt", "tiny_official_stripped.pt"])  # nc 3 and 80
def test_fine_tune_a_yolov5_best_pt_directly(data, tmp_path, checkpoint):
    from ultralytics import YOLO

    from attnyolo.engine.trainer import train
    from attnyolo.yolov5.head import YOLOv5Detect

    metrics, run, _ = train(
        model=str(FIXTURES / checkpoint),
        data=str(data),
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        plots=False,
        project=str(tmp_path),
        evaluate=False,
        autoanchor=False,
    )
    model = YOLO(str(run / "weights" / "best.pt")).model
    assert isinstance(model.model[-1], YOLOv5Detect)
    assert model.names == {0: "circle", 1: "rectangle", 2: "triangle"}
    assert model.yaml["hyp"] == {"autoanchor": False}


def test_val_predict_and_export_accept_a_yolov5_best_pt(data, tmp_path, tool):
    best = tmp_path / "best.pt"
    shutil.copy(FIXTURES / "tiny_ca_fork.pt", best)
    r = tool("val", f"model={best}", f"data={data}", *TINY, f"project={tmp_path}", "name=val")
    assert r.returncode == 0, r.stderr[-4000:]
    metrics = json.loads((tmp_path / "val" / "metrics.json").read_text())
    assert 0.0 <= metrics["coco"]["AP"] <= 1.0 and 0.0 <= metrics["voc"]["mAP50_11point"] <= 1.0

    from attnyolo.commands import export, predict

    images = data.parent / "images" / "val"
    assert predict.main([f"model={best}", f"source={images}", "imgsz=64", f"project={tmp_path}", "name=pred"]) == 0
    assert len(list((tmp_path / "pred").glob("*.jpg"))) == len(list(images.glob("*.jpg")))
    # ONNX, dynamic shapes: the tool compares onnxruntime with PyTorch and fails on a mismatch
    assert export.main([f"model={best}", "format=onnx", "imgsz=64", "dynamic=True", "device=cpu"]) == 0
    assert best.with_suffix(".onnx").is_file()

"""YOLOX-Nano through the unchanged command-line tools: train -> val -> predict -> ONNX export, in subprocesses."""

import json
import subprocess
import sys

import pytest

from attnyolo.data.sample import make_sample_dataset

SMALL = ["imgsz=96", "batch=4", "workers=0", "device=cpu"]


@pytest.mark.slow
def test_yolox_nano_train_val_predict_export(tmp_path, tool):
    data = make_sample_dataset(tmp_path / "data", n_train=16, n_val=8, imgsz=96, video=False)
    runs = tmp_path / "runs"

    r = tool(
        "train",
        "model=yolox-nano.yaml",
        f"data={data}",
        "epochs=1",
        *SMALL,
        "plots=False",
        f"project={runs}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    best = next(runs.glob("*/weights/best.pt"))
    assert "pycocotools" in r.stdout
    header = (best.parents[1] / "results.csv").read_text().splitlines()[0].split(",")
    assert {f"{split}/{term}_loss" for split in ("train", "val") for term in ("iou", "obj", "cls", "l1")} <= set(header)

    r = tool("val", f"model={best}", f"data={data}", *SMALL, f"project={tmp_path / 'val'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    metrics = json.loads((tmp_path / "val" / "exp" / "metrics.json").read_text())
    assert 0.0 <= metrics["coco"]["AP"] <= 1.0 and metrics["images"] == 8

    image = next((data.parent / "images" / "val").glob("*.jpg"))
    r = tool(
        "predict", f"model={best}", f"source={image}", "imgsz=96", "conf=1e-6", "save_json=True",
        f"project={tmp_path / 'predict'}", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    assert "1 image(s)/frame(s)" in r.stdout
    (record,) = json.loads(next((tmp_path / "predict").rglob("detections.json")).read_text())
    # conf=1e-6 keeps even an untrained model's boxes, so Ultralytics' NMS and Results run on YOLOX outputs
    assert record["boxes_xyxy"] and len(record["boxes_xyxy"]) == len(record["scores"]) == len(record["classes"])
    assert all(0 < s <= 1 for s in record["scores"]) and set(record["classes"]) <= {0, 1, 2}

    # A process that never imports attnyolo loads the checkpoint: unpickling the head imports (and registers) it.
    code = f"from ultralytics import YOLO; print(type(YOLO(r'{best}').model.model[-1]).__module__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "attnyolo.yolox.head" in r.stdout, r.stderr[-3000:]

    r = tool("export", f"model={best}", "format=onnx", "imgsz=96", "dynamic=True", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "on 96x96, 128x64 inputs" in r.stdout and "-> OK" in r.stdout  # onnxruntime == PyTorch at two sizes
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(next(best.parent.glob("*.onnx"))), providers=["CPUExecutionProvider"])
    for h, w in ((96, 96), (128, 64)):
        (y,) = session.run(None, {session.get_inputs()[0].name: np.random.rand(1, 3, h, w).astype(np.float32)})
        points = sum((h // s) * (w // s) for s in (8, 16, 32))
        assert y.shape == (1, 4 + 3, points)  # xywh + 3 class scores at every point of strides 8, 16, 32

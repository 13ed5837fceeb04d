"""End to end through the command-line tools, as a user runs them: train -> val -> predict -> export, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnyolo.data.sample import make_sample_dataset

REPO = Path(__file__).resolve().parents[2]
TINY = ["imgsz=64", "batch=4", "workers=0", "device=cpu", "plots=False"]


@pytest.fixture(scope="module")
def data_with_video(tmp_path_factory):
    return make_sample_dataset(tmp_path_factory.mktemp("sample-video"), n_train=8, n_val=4, imgsz=96, video=True)


@pytest.fixture(scope="module")
def trained(data_with_video, tmp_path_factory, tool):
    project = tmp_path_factory.mktemp("runs")
    r = tool("train", "model=yolov8n-CoordAtt.yaml", f"data={data_with_video}", "epochs=2", *TINY, f"project={project}")
    assert r.returncode == 0, r.stderr[-4000:]
    return project, r


@pytest.mark.slow
def test_train_writes_checkpoints_metrics_and_prints_table(trained):
    project, r = trained
    run = next(project.glob("*/weights/best.pt")).parents[1]
    assert f"run directory: {run}" in r.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"coco", "voc", "ultralytics", "protocol", "data", "model", "images"} <= set(metrics)
    assert 0.0 <= metrics["coco"]["AP"] <= 1.0 and 0.0 <= metrics["voc"]["mAP50_11point"] <= 1.0
    assert "AP50" in r.stdout and "pycocotools" in r.stdout
    # the checkpoint carries our layers and loads through the package
    import torch

    ckpt = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == -1 and ckpt["optimizer"] is None  # a finished run: Ultralytics stripped the optimizer
    assert sum(type(m).__name__ == "CoordAtt" for m in ckpt["ema" if ckpt.get("ema") else "model"].modules()) == 3
    assert not list((run / "weights").glob(".*.tmp")), "temporary checkpoint files left behind"


@pytest.mark.slow
def test_val_both_forms_agree_on_the_same_predictions(trained, data_with_video, tmp_path, tool):
    project, _ = trained
    best = next(project.glob("*/weights/best.pt"))
    r = tool("val", f"model={best}", f"data={data_with_video}", *TINY, f"project={tmp_path}", "name=withmodel")
    assert r.returncode == 0, r.stderr[-4000:]
    m1 = json.loads((tmp_path / "withmodel" / "metrics.json").read_text())
    r = tool(
        "val",
        f"data={data_with_video}",
        f"predictions={tmp_path / 'withmodel' / 'predictions.json'}",
        f"project={tmp_path}",
        "name=file",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    m2 = json.loads((tmp_path / "file" / "metrics.json").read_text())
    assert m1["coco"]["AP"] == m2["coco"]["AP"] and m1["voc"] == m2["voc"]


@pytest.mark.slow
def test_predict_images_and_video_keep_resolution_and_fps(trained, data_with_video, tmp_path, tool):
    import cv2

    project, _ = trained
    best = next(project.glob("*/weights/best.pt"))
    images = data_with_video.parent / "images" / "val"
    r = tool(
        "predict",
        f"model={best}",
        f"source={images}",
        "imgsz=64",
        "device=cpu",
        "save_json=True",
        f"project={tmp_path}",
        "name=img",
        "conf=0.01",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert "frames/s" in r.stdout
    for src in images.glob("*.jpg"):
        out = cv2.imread(str(tmp_path / "img" / src.name))
        assert out is not None and out.shape == cv2.imread(str(src)).shape
    records = json.loads((tmp_path / "img" / "detections.json").read_text())
    assert len(records) == len(list(images.glob("*.jpg")))
    video = data_with_video.parent / "sample.mp4"
    r = tool("predict", f"model={best}", f"source={video}", "imgsz=64", "device=cpu", f"project={tmp_path}", "name=vid")
    assert r.returncode == 0, r.stderr[-4000:]
    outs = [p for p in (tmp_path / "vid").iterdir() if p.suffix in {".mp4", ".avi"}]
    assert outs, list((tmp_path / "vid").iterdir())
    cin, cout = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(outs[0]))
    for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_COUNT):
        assert cin.get(prop) == pytest.approx(cout.get(prop), rel=0.01), prop


@pytest.mark.slow
def test_export_onnx_matches_pytorch(trained, tmp_path, tool):
    project, _ = trained
    best = next(project.glob("*/weights/best.pt"))
    r = tool("export", f"model={best}", "format=onnx", "imgsz=64", "dynamic=True", "device=cpu")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    # Check the file independently of the tool's own verdict: onnxruntime against the PyTorch checkpoint.
    import numpy as np
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    model = YOLO(str(best)).model.float().fuse(verbose=False).eval()
    session = ort.InferenceSession(str(best.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    for h, w in ((64, 64), (96, 64)):  # the export size and another one (dynamic axes)
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            expected = model(x)[0].numpy()
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        assert got.shape == expected.shape == (1, 4 + 3, sum((h // s) * (w // s) for s in (8, 16, 32)))
        assert np.abs(got - expected).max() <= 1e-3 * max(1.0, float(np.abs(expected).max()))
    assert "-> OK" in r.stdout


def test_onnx_check_sizes_follow_the_exporters_size_rules():
    from attnyolo.engine.export import verification_sizes

    # one number, or a list of one or two (Ultralytics' check_imgsz), rounded up to the largest stride
    assert verification_sizes(640, 32) == verification_sizes([640], 32) == [(640, 640)]
    assert verification_sizes([480, 640], 32) == [(480, 640)]
    assert verification_sizes([70], 32) == [(96, 96)]
    import torch

    assert verification_sizes([64], torch.tensor([8.0, 16.0, 32.0]), dynamic=True) == [(64, 64), (96, 32)]


@pytest.mark.slow
@pytest.mark.parametrize("imgsz", ["[64]", "70"])
def test_export_checks_one_element_and_off_stride_sizes(imgsz, tiny_checkpoint, tmp_path, run_command):
    import shutil

    model = shutil.copy(tiny_checkpoint, tmp_path / "tiny.pt")  # the export is written beside the checkpoint
    r = run_command("export", f"model={model}", "format=onnx", f"imgsz={imgsz}", "device=cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    size = 64 if imgsz == "[64]" else 72  # the tiny model's largest stride is 4: 70 is exported at 72
    assert f"on {size}x{size} inputs:" in r.stdout and r.stdout.rstrip().endswith("-> OK"), r.stdout[-2000:]


@pytest.mark.slow
def test_pretrained_transfer_reports_counts(data_with_video, tmp_path, tool):
    from ultralytics import YOLO

    stock = tmp_path / "yolov8n-local.pt"
    YOLO("yolov8n.yaml").save(stock)  # a stock checkpoint made locally, no download
    r = tool(
        "train",
        "model=yolov8n-ECA.yaml",
        f"data={data_with_video}",
        f"pretrained={stock}",
        "epochs=1",
        *TINY,
        f"project={tmp_path}",
        "evaluate=False",
    )
    assert r.returncode == 0, r.stderr[-4000:]
    log = r.stdout + r.stderr
    assert "transferred" in log and "tensors" in log
    line = next(ln for ln in log.splitlines() if "transferred" in ln)
    done, total = map(int, line.split("transferred ")[1].split(" ")[0].split("/"))
    # Fresh: the three ECA convs (no ECA in the stock model) and the head's class branch, whose hidden width
    # Ultralytics derives from the class count (80 in the stock model, 3 here): 3 levels x 12 tensors.
    assert total - done == 3 + 36, line


@pytest.mark.slow
def test_resume_after_kill_mid_epoch(data_with_video, tmp_path, tool):
    """Kill training during epoch 2 (after epoch 1's last.pt), resume, and finish all epochs."""
    args = [
        sys.executable,
        str(REPO / "tools" / "train.py"),
        "model=yolov8n-SE.yaml",
        f"data={data_with_video}",
        "epochs=3",
        *TINY,
        f"project={tmp_path}",
        "evaluate=False",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = list(tmp_path.glob("*/weights/last.pt"))
        if found:
            last = found[0]  # epoch 1 is saved; epoch 2 is running
            break
        time.sleep(0.2)
    assert last is not None and proc.poll() is None, "training ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    import torch

    epoch_before = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    r = tool("train", "resume=True", f"project={tmp_path}", "evaluate=False")
    assert r.returncode == 0, r.stderr[-4000:]
    results = (last.parents[1] / "results.csv").read_text().strip().splitlines()
    assert [int(row.split(",")[0]) for row in results[1:]] == [1, 2, 3], results  # each epoch logged once
    assert f"resuming {last} after epoch {epoch_before + 1}" in r.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["model=missing.pt", "source=x.jpg"], "does not exist"),
        (["source=definitely/not/here.jpg"], "does not exist"),
        (["modle=x.pt"], "model?"),
    ],
)
def test_predict_bad_input_one_line(args, expected, tmp_path, run_command):
    r = run_command("predict", *args, cwd=tmp_path)
    assert r.returncode != 0
    assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_predict_unreadable_video_and_non_checkpoint(tmp_path, run_command):
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"this is not a video")
    fake_pt = tmp_path / "weights.pt"
    fake_pt.write_text("not a checkpoint")
    r = run_command("predict", f"model={fake_pt}", f"source={bad_video}")
    assert r.returncode != 0 and "cannot be opened" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    img = tmp_path / "a.jpg"
    import cv2
    import numpy as np

    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    r = run_command("predict", f"model={fake_pt}", f"source={img}")
    assert r.returncode != 0 and "not a loadable checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_predict_corrupt_image_is_refused(tmp_path, run_command):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"garbage, not a jpeg")
    r = run_command("predict", f"model={tmp_path / 'any.pt'}", f"source={bad}")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"image {bad} cannot be read" in r.stderr


@pytest.mark.slow
def test_predict_folder_of_unreadable_images_is_an_error(trained, tmp_path, tool):
    project, _ = trained
    best = next(project.glob("*/weights/best.pt"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"garbage")  # Ultralytics skips it: zero frames would otherwise "succeed"
    r = tool("predict", f"model={best}", f"source={folder}", f"project={tmp_path}")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "gave no readable image or frame" in r.stderr


def test_train_bad_inputs_one_line(tmp_path, run_command):
    r = run_command("train", "model=yolov8n-CoordAttn.yaml", f"data={tmp_path / 'nope.yaml'}", "epochs=1")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "yolov8n-CoordAttn.yaml is neither a file nor a model name" in r.stderr
    assert "Did you mean yolov8n-CoordAtt.yaml" in r.stderr
    r = run_command("train", "model=yolov8n.yaml", f"data={tmp_path / 'nope.yaml'}", "epochs=1")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"data={tmp_path / 'nope.yaml'} does not exist, and Ultralytics has no dataset" in r.stderr
    r = run_command("train", "resume=True", f"project={tmp_path}")
    assert r.returncode != 0 and "found no weights/last.pt" in r.stderr and "Traceback" not in r.stderr
    r = run_command("train", "epoch=3")
    assert r.returncode == 2 and "Did you mean epochs" in r.stderr
    # A YAML row that cannot be built fails before any work: no sample dataset is generated for it.
    bad = tmp_path / "bad.yaml"
    rows = ["  - [-1, 1, Conv, [16, 3, 2]]", "  - [-1, 1, CoordAtt, [32]]"]  # 32 where 16 channels arrive
    bad.write_text("\n".join(["nc: 2", "backbone:", *rows, "head:", "  - [[1], 1, Detect, [nc]]", ""]))
    r = run_command("train", f"model={bad}", "epochs=1", cwd=tmp_path)
    assert r.returncode == 1 and "bad.yaml, row 1 (CoordAtt)" in r.stderr and "outputs 16 channels" in r.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_corrupt_training_image_is_skipped_with_a_warning(tmp_path):
    data = make_sample_dataset(tmp_path / "data", n_train=6, n_val=3, imgsz=64, video=False)
    bad = sorted((data.parent / "images" / "train").glob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    env = {**os.environ, "YOLO_VERBOSE": "true"}  # the warning is what this test reads
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "train.py"),
            "model=yolov8n-ECA.yaml",
            f"data={data}",
            "epochs=1",
            *TINY,
            f"project={tmp_path / 'runs'}",
            "evaluate=False",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    warning = [ln for ln in (r.stdout + r.stderr).splitlines() if bad.name in ln]
    assert warning and any("corrupt" in ln.lower() or "ignoring" in ln.lower() for ln in warning), warning

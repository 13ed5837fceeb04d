"""Attention maps and Grad-CAM: the maps are the layers' real gates, Grad-CAM follows the chosen detection's score."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import attnyolo  # noqa: F401  (registers the layers)
from attnyolo.analysis.visualize import read_image
from attnyolo.analysis.visualize_maps import anchor_stride, attention_maps, detect, grad_cam, letterbox
from attnyolo.data.sample import make_sample_dataset

IMGSZ = 64
CONF = 1e-6  # untrained weights: every score is tiny, but NMS still keeps ranked boxes


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    data = make_sample_dataset(tmp_path_factory.mktemp("vis-data"), n_train=1, n_val=1, imgsz=80, video=False)
    return next((data.parent / "images" / "val").glob("*.jpg"))


@pytest.fixture(scope="module", params=["yolov8n-CoordAtt.yaml", "yolov8n-ELA-S.yaml"])
def checkpoint(request, tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("ckpt") / f"{Path(request.param).stem}.pt"
    torch.manual_seed(0)  # the same weights in every session: the Grad-CAM assertions below need non-zero maps
    yolo = YOLO(request.param)
    with torch.no_grad():  # random BN statistics and weights, so gates and scores vary across the image
        for m in yolo.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    yolo.save(path)
    return path


@pytest.fixture
def net(checkpoint):
    from attnyolo.integration.checkpoints import load_model

    return load_model(checkpoint).model.float().eval()


def test_attention_maps_are_the_layers_real_gates(net, image_path):
    image = read_image(image_path)
    lb = letterbox(image, IMGSZ)
    seen = {}

    def hook(mod, args, out, key=None):
        seen[key] = (args[0].detach().clone(), out.detach().clone())

    rows = [i for i, m in enumerate(net.model) if type(m).__name__ in {"CoordAtt", "ELA"}]
    handles = [net.model[r].register_forward_hook(lambda m, a, o, r=r: hook(m, a, o, r)) for r in rows]
    try:
        with torch.no_grad():
            net(lb.tensor)
        maps = attention_maps(net, lb)
    finally:
        for h in handles:
            h.remove()
    assert [m["row"] for m in maps] == rows == [5, 8, 11]
    for m in maps:
        x, y = seen[m["row"]]
        gates = torch.einsum("ch,cw->chw", torch.from_numpy(m["gate_h"]), torch.from_numpy(m["gate_w"]))
        torch.testing.assert_close(x[0] * gates, y[0], atol=1e-5, rtol=1e-4)  # the layer multiplied x by exactly this
        np.testing.assert_allclose(m["feature_map"], gates.mean(0).numpy(), rtol=1e-5, atol=1e-7)
        assert m["feature_map"].shape == tuple(x.shape[2:]) and m["feature_map"].std() > 0
        assert m["image_map"].shape == image.shape[:2]  # cropped back to the unpadded image, resized to it


def test_letterbox_round_trip_keeps_the_image_geometry(image_path):
    image = read_image(image_path)
    lb = letterbox(image, IMGSZ)
    side = IMGSZ
    ramp = np.tile(np.arange(side, dtype=np.float32), (side, 1))  # a map equal to the letterboxed x coordinate
    back = lb.to_image(ramp)
    assert back.shape == image.shape[:2]
    # the left edge of the image sits at the left padding, the right edge at the end of the resized image
    assert abs(back[:, 0].mean() - lb.left) < 1.0
    assert abs(back[:, -1].mean() - (lb.left + round(image.shape[1] * lb.scale) - 1)) < 1.0


def test_grad_cam_follows_the_chosen_detections_score(net, image_path):
    lb = letterbox(read_image(image_path), IMGSZ)
    row, rank = 5, 2
    cam = grad_cam(net, lb, row, detection=rank, conf=CONF)
    det = cam["detection"]

    # Independently: the raw prediction at the returned anchor is the NMS box, and its class score is the score.
    captured = {}
    handle = net.model[row].register_forward_hook(lambda m, a, o: captured.update(before=a[0], after=o))
    try:
        x = lb.tensor.clone().requires_grad_(True)
        raw, boxes, anchors = detect(net, x, conf=CONF)
        assert int(anchors[rank]) == det["anchor"]
        assert boxes[rank, :4].tolist() == pytest.approx(det["box"], abs=1e-3)
        cx, cy, w, h = raw[0, :4, det["anchor"]].tolist()
        assert [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] == pytest.approx(det["box"], abs=1e-3)
        score = raw[0, 4 + det["class"], det["anchor"]]
        assert float(score.detach()) == pytest.approx(det["score"], rel=1e-5) == pytest.approx(cam["score"], rel=1e-5)
        grads = torch.autograd.grad(score, [captured["before"], captured["after"]])
    finally:
        handle.remove()
    for key, grad in zip(("before", "after"), grads):
        act = captured[key].detach()[0]
        expected = torch.relu((grad[0].mean((1, 2))[:, None, None] * act).sum(0))
        expected = expected / expected.max() if expected.max() > 0 else expected
        np.testing.assert_allclose(cam[key]["feature_map"], expected.numpy(), rtol=1e-4, atol=1e-6)
        assert cam[key]["image_map"].shape == lb.image.shape[:2]
        assert 0.0 <= cam[key]["image_map"].min() and cam[key]["image_map"].max() <= 1.0

    assert cam["after"]["feature_map"].max() == 1.0  # not vacuous: ReLU left a map
    other = grad_cam(net, lb, row, detection=1, conf=CONF)
    assert other["detection"]["anchor"] != det["anchor"]
    assert not np.allclose(other["after"]["feature_map"], cam["after"]["feature_map"])


def test_anchor_stride_counts_grid_cells_per_level(net):
    # At 64 px the P3/P4/P5 grids have 8x8, 4x4 and 2x2 cells, concatenated in that order.
    assert [anchor_stride(net, IMGSZ, a) for a in (0, 63, 64, 79, 80, 83)] == [8, 8, 16, 16, 32, 32]
    with pytest.raises(ValueError, match="beyond the 84 grid cells"):
        anchor_stride(net, IMGSZ, 84)


def test_grad_cam_says_when_a_row_cannot_explain_the_detection(net, image_path):
    lb = letterbox(read_image(image_path), IMGSZ)
    with torch.no_grad():
        _, boxes, anchors = detect(net, lb.tensor, conf=CONF)
    rank = next(k for k, a in enumerate(anchors.tolist()) if a < 64)  # a detection made by the P3 level
    # Row 24 (P5 C2f) and its input feed only the P5 head: the P3 detection's score does not depend on them.
    far = grad_cam(net, lb, 24, detection=rank, conf=CONF)
    assert far["detection"]["stride"] == 8
    for key in ("before", "after"):
        assert far[key]["status"] == "no-gradient"
        assert not far[key]["feature_map"].any()
    # Row 18 is the P3 head's input: there is a gradient, so the status is never "no-gradient" there.
    near = grad_cam(net, lb, 18, detection=rank, conf=CONF)
    assert near["after"]["status"] in {"ok", "relu-empty"}
    assert (near["after"]["status"] == "ok") == bool(near["after"]["feature_map"].max() == 1.0)


def test_grad_cam_errors_are_actionable(net, image_path):
    lb = letterbox(read_image(image_path), IMGSZ)
    with pytest.raises(ValueError, match=r"no detection with score >= conf=0.99. Fix: lower conf="):
        grad_cam(net, lb, 8, conf=0.99)
    with pytest.raises(ValueError, match=r"detection=100000, but only"):
        grad_cam(net, lb, 8, detection=100000, conf=CONF)
    with pytest.raises(ValueError, match="are not rows of this model"):
        grad_cam(net, lb, 99, conf=CONF)


@pytest.mark.slow
def test_visualize_tool_writes_named_pngs(checkpoint, image_path, tmp_path, tool):
    r = tool(
        "visualize", f"model={checkpoint}", f"source={image_path}", f"imgsz={IMGSZ}", f"conf={CONF}", "layers=5,8",
        f"project={tmp_path}", "name=pics",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "pics").glob("*.png"))
    layer = "CoordAtt" if "CoordAtt" in checkpoint.name else "ELA-S"
    stem = image_path.stem
    assert files[:2] == [f"{stem}_attention_row05_{layer}.png", f"{stem}_attention_row08_{layer}.png"]
    assert sum(f.startswith(f"{stem}_gradcam_row05_{layer}_before_det0_") for f in files) == 1
    assert len(files) == 2 + 2 * 2  # two maps; before and after for two rows
    image = read_image(image_path)
    for name in files:
        pic = cv2.imread(str(tmp_path / "pics" / name))
        k = pic.shape[0] // image.shape[0]
        assert k >= 1 and pic.shape[:2] == (image.shape[0] * k, image.shape[1] * k)
    lines = r.stdout.splitlines()
    assert sum(f"wrote {tmp_path / 'pics'}" in ln for ln in lines) == len(files)
    assert all(ln.startswith("wrote ") or "blank" in ln for ln in lines)  # other lines explain a blank Grad-CAM


def test_visualize_tool_missing_model_is_one_line(tmp_path, run_command):
    r = run_command("visualize", f"model={tmp_path / 'nope.pt'}", "source=x.jpg", f"project={tmp_path}")
    assert r.returncode == 1 and "nope.pt does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unreadable_image_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg does not exist"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="not an image OpenCV can read"):
        read_image(tmp_path / "text.jpg")


def test_a_stacked_attention_row_is_listed_mapped_and_a_default_grad_cam_row(image_path, capsys):
    # `[-1, 6, CoordAtt, [1024]]` at depth 0.33 builds an nn.Sequential of 2 CoordAtt (row 11 of the fork's YAML)
    from ultralytics.nn.tasks import DetectionModel

    from attnyolo.analysis.summary import attention_placements
    from attnyolo.analysis.visualize_maps import attention_rows
    from attnyolo.commands.model_info import main as model_info

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "yolov5" / "ca_fork_tiny_rep.yaml"
    torch.manual_seed(0)
    model = DetectionModel(str(fixture), verbose=False).eval()
    stack = model.model[11]
    assert isinstance(stack, torch.nn.Sequential) and [type(m).__name__ for m in stack] == ["CoordAtt"] * 2
    placements = attention_placements(model)
    assert [(p["row"], p["level"], p["channels"], p["repeats"]) for p in placements] == [
        (5, "P3", 8, 1),
        (8, "P4", 16, 1),
        (11, "P5", 32, 2),  # 1024 at width 0.03125
    ]
    assert placements[2]["layer"] == "CoordAtt x2"
    assert attention_rows(model) == [5, 8, 11]  # Grad-CAM's default rows
    assert model_info([f"model={fixture}", "imgsz=64"]) == 0
    assert "row  11  P5  CoordAtt x2" in capsys.readouterr().out
    # one map per layer of the stack, each the gates that layer multiplied its own input by
    seen = {}
    hooks = [
        m.register_forward_hook(lambda mod, a, o, k=k: seen.__setitem__(k, (a[0], o))) for k, m in enumerate(stack)
    ]
    try:
        maps = attention_maps(model, letterbox(read_image(image_path), IMGSZ))
    finally:
        for h in hooks:
            h.remove()
    assert [m["label"] for m in maps] == ["row05_CoordAtt", "row08_CoordAtt", "row11.0_CoordAtt", "row11.1_CoordAtt"]
    for k, m in enumerate(maps[2:]):
        x, y = seen[k]
        gates = torch.einsum("ch,cw->chw", torch.from_numpy(m["gate_h"]), torch.from_numpy(m["gate_w"]))
        torch.testing.assert_close(x[0] * gates, y[0], atol=1e-5, rtol=1e-4)

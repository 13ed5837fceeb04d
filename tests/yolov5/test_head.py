"""The classic YOLOv5 head: decoding worked out by hand, and outputs equal to the real ultralytics/yolov5 code's."""

import math

import numpy as np
import pytest
import torch
from yolov5_helpers import FIXTURES, fixture_json, fixture_npz, load_classic

import attnyolo  # noqa: F401  (registers the layers and the classic head)
from attnyolo.yolov5.head import YOLOv5Detect, check_anchor_order

ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def head_with_constant_logits(logits, nc=2):
    """A built head whose every output is ``logits`` (zero weights, biases = logits), strides 8/16/32."""
    head = YOLOv5Detect(nc, ANCHORS, ch=(4, 4, 4))
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    head.anchors_to_grid_units()
    for conv in head.m:
        torch.nn.init.zeros_(conv.weight)
        conv.bias.data = torch.tensor(logits * 3, dtype=torch.float32)
    return head.eval()


def test_one_cell_decoded_by_hand():
    # sigmoid(log 3) = 0.75, sigmoid(0) = 0.5, sigmoid(-log 3) = 0.25
    l3 = math.log(3)
    head = head_with_constant_logits([l3, 0.0, 0.0, l3, 0.0, l3, -l3])
    feats = [torch.zeros(1, 4, 4, 5), torch.zeros(1, 4, 2, 3), torch.zeros(1, 4, 1, 2)]  # 4x5, 2x3, 1x2 cells
    y, raw = head(feats)
    assert y.shape == (1, 4 + 2, 3 * (20 + 6 + 2))
    # level 0 (stride 8), anchor 1 (16 x 30 px), cell row gy=2, column gx=3: row index in level, anchor, y, x order
    row = 1 * 20 + 2 * 5 + 3
    x = (2 * 0.75 + 3 - 0.5) * 8  # (2*sigmoid + grid - 0.5) * stride = 32
    yc = (2 * 0.5 + 2 - 0.5) * 8  # 20
    w = (2 * 0.5) ** 2 * 16  # (2*sigmoid)^2 * anchor = 16
    h = (2 * 0.75) ** 2 * 30  # 67.5
    assert y[0, :4, row].tolist() == pytest.approx([x, yc, w, h], rel=1e-6)
    assert y[0, 4:, row].tolist() == pytest.approx([0.5 * 0.75, 0.5 * 0.25], abs=1e-6)  # obj * cls
    # level 2 (stride 32), anchor 2 (373 x 326 px), the second cell of its single row
    row = 3 * 20 + 3 * 6 + 2 * 2 + 0 * 2 + 1
    assert y[0, :4, row].tolist() == pytest.approx([(1.5 + 1 - 0.5) * 32, (1 + 0 - 0.5) * 32, 373, 2.25 * 326], 1e-5)


def test_training_output_is_yolov5s_per_level_logits():
    head = head_with_constant_logits([0.0] * 7).train()
    feats = [torch.zeros(2, 4, 4, 5), torch.zeros(2, 4, 2, 3), torch.zeros(2, 4, 1, 2)]
    out = head(feats)
    assert [tuple(p.shape) for p in out["raw"]] == [(2, 3, 4, 5, 7), (2, 3, 2, 3, 7), (2, 3, 1, 2, 7)]
    assert out["feats"] is feats


def test_export_mode_returns_the_tensor_alone_and_xyxy_corners_on_request():
    head = head_with_constant_logits([0.0] * 7)
    feats = [torch.zeros(1, 4, 4, 5), torch.zeros(1, 4, 2, 3), torch.zeros(1, 4, 1, 2)]
    xywh = head(feats)[0]
    head.export, head.xyxy, head.shape = True, True, None
    xyxy = head(feats)
    assert isinstance(xyxy, torch.Tensor)
    assert torch.allclose(xyxy[:, :2], xywh[:, :2] - xywh[:, 2:4] / 2)
    assert torch.allclose(xyxy[:, 2:4], xywh[:, :2] + xywh[:, 2:4] / 2)


def test_anchors_become_grid_units_and_biases_get_yolov5s_priors():
    head = YOLOv5Detect(3, ANCHORS, ch=(4, 4, 4))
    for conv in head.m:
        torch.nn.init.zeros_(conv.bias)
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    head.bias_init()
    assert head.anchors[1].tolist() == [[30 / 16, 61 / 16], [62 / 16, 45 / 16], [59 / 16, 119 / 16]]
    b = head.m[0].bias.view(3, 8)
    assert b[:, 4].tolist() == pytest.approx([math.log(8 / 80**2)] * 3)  # 8 objects per 640 image, 80x80 cells
    assert b[:, 5:].flatten().tolist() == pytest.approx([math.log(0.6 / (3 - 0.99999))] * 9)
    head.bias_init()  # Ultralytics may call it again (e.g. after loading weights): anchors are converted once
    assert head.anchors[1, 0].tolist() == [30 / 16, 61 / 16]


def test_anchor_levels_are_ordered_by_stride_like_yolov5():
    case = fixture_json("autoanchor.json")["check_anchor_order"]
    stride = torch.tensor(case["stride"])
    out = check_anchor_order(torch.tensor(case["input_anchors"]), stride)
    assert out.tolist() == case["output_anchors"]
    assert check_anchor_order(out, stride).tolist() == case["already_ordered_output"]


def test_anchor_count_builds_placeholders():
    head = YOLOv5Detect(2, 3, ch=(8, 8, 8))
    assert head.anchors.shape == (3, 3, 2) and head.anchors[2].flatten().tolist() == [0, 1, 2, 3, 4, 5]


# ---------------------------------------------------------------------------- against the real ultralytics/yolov5
def _compare(model, tag, inp, z):
    x = torch.from_numpy(z[f"input_{inp}_u8"]).float() / 255
    with torch.no_grad():
        y, raw = model(x)
    ours = model.model[-1].decode(raw["raw"]).numpy()
    if f"{tag}_{inp}_z" in z:
        ref = z[f"{tag}_{inp}_z"]
    else:
        rows = z[f"{tag}_{inp}_rows"]
        ref, ours, y = z[f"{tag}_{inp}_z_subset"], ours[:, rows], y[..., rows]
    # what Ultralytics' NMS receives: xywh boxes and obj * cls scores, (B, 4 + nc, N)
    boxes, scores = y[:, :4].permute(0, 2, 1).numpy(), y[:, 4:].permute(0, 2, 1).numpy()
    assert np.abs(boxes - ref[..., :4]).max() < 0.02  # pixels
    assert np.abs(scores - ref[..., 5:] * ref[..., 4:5]).max() < 1e-4
    assert np.abs(ours[..., 4:] - ref[..., 4:]).max() < 1e-4  # objectness and class probabilities themselves


@pytest.mark.parametrize(
    ("tag", "checkpoint", "entry"),
    [
        ("official", "tiny_official_stripped.pt", None),
        ("official_trainmodel", "tiny_official_train.pt", "model"),
        ("ca", "tiny_ca_fork.pt", None),
    ],
)
def test_outputs_equal_the_real_yolov5_code(tag, checkpoint, entry):
    z = fixture_npz("outputs.npz")
    model, _ = load_classic(checkpoint, entry)
    for inp in ("a", "b"):  # a: 1x3x192x256 (non-square), b: 2x3x160x160
        _compare(model.eval(), tag, inp, z)


def test_the_ema_entry_is_what_yolov5_loads_from_a_training_checkpoint():
    z = fixture_npz("outputs.npz")  # "official" = the stripped file = the EMA of the training checkpoint
    model, report = load_classic("tiny_official_train.pt")
    assert report == {**report, "tensors": 349, "classes": 80}
    _compare(model.eval(), "official", "b", z)


def test_visualize_finds_the_level_of_a_classic_prediction():
    from ultralytics.nn.tasks import DetectionModel

    from attnyolo.analysis.visualize_maps import anchor_stride

    model = DetectionModel(str(FIXTURES / "ca_fork_tiny.yaml"), verbose=False)  # 3 anchors per cell
    # 64x64 input: 3 x 8x8 predictions at stride 8, then 3 x 4x4 at 16, then 3 x 2x2 at 32
    assert [anchor_stride(model, 64, a) for a in (0, 191, 192, 239, 240, 251)] == [8, 8, 16, 16, 32, 32]

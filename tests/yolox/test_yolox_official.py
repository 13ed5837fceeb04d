"""Official YOLOX checkpoints: the key map, size inference, the input fold, and outputs equal to the official model's.

The expected outputs were written by the official YOLOX code for seeded weights (tests/fixtures/README.md); the
checkpoints here are those weights saved in the official format, then converted by attnyolo's import_weights.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from official_helpers import official_keys, official_shapes, official_state_dict, stored
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, yaml_model_load

from attnyolo.errors import CheckpointError
from attnyolo.integration.datasets import coco_class_names
from attnyolo.yolox.official_keys import official_key_map
from attnyolo.yolox.official_weights import OFFICIAL_SIZES, fold_bgr255_into_stem, infer_size, load_official_weights

SIZES = ["nano", "tiny", "s", *(pytest.param(size, marks=pytest.mark.slow) for size in "mlx")]  # m, l, x: 1-3 s each


# ------------------------------------------------------------------------------------------------------- key map
@pytest.mark.parametrize("size", SIZES)
def test_every_official_key_of_every_size_maps_to_a_tensor_of_the_same_shape(size):
    shapes = official_shapes(size)
    model = DetectionModel(f"yolox-{size}.yaml", verbose=False)
    mapping = official_key_map(model)
    ours = model.state_dict()
    assert None not in mapping.values()  # no attention rows in the plain model
    assert sorted(mapping.values()) == sorted(shapes)  # one-to-one: every official key, each once
    for key, official in mapping.items():
        assert tuple(ours[key].shape) == shapes[official], (key, official)
    assert sum(p.numel() for p in model.parameters()) == official_keys()[size]["num_params"]


@pytest.mark.parametrize(
    ("model", "pairs"),
    [
        (  # rows of cfg/yolox/yolox.yaml; block names: CSPLayer conv1/2/3 = C3 cv1/2/3, SPPBottleneck conv1/2 = cv1/2
            "yolox-s.yaml",
            {
                "backbone.backbone.stem.conv.conv.weight": "model.0.conv.conv.weight",
                "backbone.backbone.dark3.1.m.2.conv2.conv.weight": "model.4.m.2.cv2.conv.weight",
                "backbone.backbone.dark5.1.conv2.bn.running_var": "model.8.cv2.bn.running_var",
                "backbone.backbone.dark5.2.conv3.bn.weight": "model.9.cv3.bn.weight",
                "backbone.reduce_conv1.conv.weight": "model.14.conv.weight",
                "backbone.C3_n4.m.0.conv1.bn.num_batches_tracked": "model.23.m.0.cv1.bn.num_batches_tracked",
                "head.stems.2.conv.weight": "model.24.stems.2.conv.weight",
                "head.cls_preds.1.bias": "model.24.cls_preds.1.bias",
            },
        ),
        (  # Nano: the dense 3x3 convs are DWConv (dconv, pconv) in both projects
            "yolox-nano.yaml",
            {
                "backbone.backbone.dark2.0.dconv.conv.weight": "model.1.dconv.conv.weight",
                "backbone.backbone.dark2.1.m.0.conv2.dconv.conv.weight": "model.2.m.0.cv2.dconv.conv.weight",
                "backbone.bu_conv1.pconv.bn.bias": "model.21.pconv.bn.bias",
                "head.reg_convs.0.1.dconv.bn.running_mean": "model.24.reg_convs.0.1.dconv.bn.running_mean",
            },
        ),
        (  # cfg/yolox/yolox-attention.yaml: seven attention rows shift the later rows
            "yolox-nano-ELA-S.yaml",
            {
                "backbone.backbone.dark4.0.dconv.conv.weight": "model.6.dconv.conv.weight",
                "backbone.backbone.dark5.1.conv1.conv.weight": "model.10.cv1.conv.weight",
                "backbone.lateral_conv0.conv.weight": "model.13.conv.weight",
                "backbone.C3_p4.conv1.conv.weight": "model.17.cv1.conv.weight",
                "backbone.bu_conv1.dconv.conv.weight": "model.27.dconv.conv.weight",
                "backbone.C3_n4.conv3.conv.weight": "model.30.cv3.conv.weight",
                "head.obj_preds.2.weight": "model.31.obj_preds.2.weight",
            },
        ),
    ],
)
def test_key_map_follows_the_module_structure(model, pairs):
    built = DetectionModel(model, verbose=False)
    mapping = official_key_map(built)
    inverse = {official: key for key, official in mapping.items() if official}
    for official, ours in pairs.items():
        assert inverse[official] == ours
    if "ELA" in model:
        attention = sorted({int(k.split(".")[1]) for k, v in mapping.items() if v is None})
        assert attention == [5, 8, 12, 16, 21, 25, 29]  # the Attention rows of yolox-attention.yaml
        assert sorted(inverse) == sorted(official_shapes("nano"))


def test_a_model_that_is_not_yoloxs_network_is_refused_naming_the_row():
    with pytest.raises(CheckpointError, match="23 rows besides attention rows; YOLOX's network has 25"):
        official_key_map(DetectionModel("yolov8n.yaml", verbose=False), "model=yolov8n.yaml")
    d = yaml_model_load("yolox-s.yaml")
    d["head"][2][0] = [6, -1]  # concatenate dark4 first: same channels, not YOLOX's order
    with pytest.raises(CheckpointError, match=r"row 12 \('concat P4'\) reads \['backbone.backbone.dark4.1'"):
        official_key_map(DetectionModel(d, verbose=False))
    d = yaml_model_load("yolox-s.yaml")
    d["head"][3][3] = [512]  # C3_p4 with shortcuts: same tensors, different sums
    with pytest.raises(CheckpointError, match=r"row 13 \('backbone.C3_p4'\): its bottlenecks add their input"):
        official_key_map(DetectionModel(d, verbose=False))
    d = yaml_model_load("yolox-s.yaml")
    d["backbone"][8][3] = [1024, [5, 9, 15]]
    with pytest.raises(CheckpointError, match=r"max-pool sizes \(5, 9, 15\), YOLOX's are \(5, 9, 13\)"):
        official_key_map(DetectionModel(d, verbose=False))


# ------------------------------------------------------------------------------------------------ size inference
def test_the_official_sizes_are_the_names_models_are_built_by():
    from attnyolo.integration.names import YOLOX_SIZE_NAMES, yolox_name

    assert list(OFFICIAL_SIZES) == list(YOLOX_SIZE_NAMES)  # the model zoo's six, in its order
    assert [yolox_name(s.model_yaml) for s in OFFICIAL_SIZES.values()] == [(v, None) for v in YOLOX_SIZE_NAMES.values()]


@pytest.mark.parametrize("size", list(OFFICIAL_SIZES))
def test_size_is_inferred_from_the_shapes(size):
    assert infer_size(official_shapes(size)).name == size
    expected = official_keys()[size]
    found = OFFICIAL_SIZES[size]
    assert (found.depth, found.width, found.depthwise) == (expected["depth"], expected["width"], expected["depthwise"])
    assert found.test_size == expected["test_size"][0]


def test_shapes_of_no_official_size_are_named():
    shapes = dict(official_shapes("s"))
    shapes["backbone.backbone.stem.conv.conv.weight"] = (40, 12, 3, 3)
    with pytest.raises(CheckpointError, match="stem width 40, 1 bottleneck.*dense 3x3 convs: no official YOLOX size"):
        infer_size(shapes)
    # Nano's width without its depthwise convs is no official model either
    dense_nano = {k.replace("dconv", "conv"): v for k, v in official_shapes("nano").items() if "pconv" not in k}
    with pytest.raises(CheckpointError, match="stem width 16"):
        infer_size(dense_nano)


# ----------------------------------------------------------------------------------------------------- the fold
def focus(x):
    """Space-to-depth in YOLOX's patch order: top-left, bottom-left, top-right, bottom-right (each 3 colours)."""
    return torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)


def test_fold_reverses_colours_within_each_patch_and_scales_by_255():
    w = torch.randn(4, 12, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    folded = fold_bgr255_into_stem(w)
    for patch in range(4):
        for colour in range(3):
            torch.testing.assert_close(folded[:, 3 * patch + colour], 255 * w[:, 3 * patch + 2 - colour])
    # What the fold is for: the official stem on BGR 0..255 equals the folded stem on RGB 0..1.
    bgr = torch.randint(0, 256, (1, 3, 8, 10), generator=torch.Generator().manual_seed(1)).double()
    rgb01 = bgr.flip(1) / 255
    torch.testing.assert_close(F.conv2d(focus(rgb01), folded, padding=1), F.conv2d(focus(bgr), w, padding=1))


# -------------------------------------------------------------------------------------- outputs equal the official
def official_outputs(size, tag):
    """The stored official outputs and the same input in Ultralytics' convention (RGB, 0..1)."""
    d = stored(f"outputs_{size}")
    x = torch.from_numpy(d[f"input_{tag}"][:, ::-1].copy()).float() / 255  # uint8 BGR -> RGB 0..1
    return d, x


@pytest.mark.parametrize("tag", ["test", "nonsquare"])
@pytest.mark.parametrize("size", ["nano", pytest.param("s", marks=pytest.mark.slow)])
def test_converted_checkpoint_reproduces_the_official_outputs(converted_checkpoint, size, tag):
    d, x = official_outputs(size, tag)
    yolo = YOLO(str(converted_checkpoint(size)))
    model = yolo.model.eval()
    assert model.names == coco_class_names() and next(model.parameters()).dtype == torch.float32
    assert yolo.overrides["imgsz"] == OFFICIAL_SIZES[size].test_size
    with torch.no_grad():
        y, raw = model(x)
    y = y[0].T.double().numpy()  # (N, 4 + 80): boxes xywh (centre), then obj * cls
    assert len(y) == len(d[f"boxes_{tag}"])  # same points, level-major then row-major
    np.testing.assert_allclose(y[:, :4], d[f"boxes_{tag}"], rtol=0, atol=0.02)  # decoded boxes, px
    rows = d[f"sel_rows_{tag}"].astype(np.float64)
    np.testing.assert_allclose(y[d[f"sel_idx_{tag}"], 4:], rows[:, 4:5] * rows[:, 5:], rtol=0, atol=1e-4)

    obj = raw["obj"][0, 0].sigmoid().double().numpy()
    cls = raw["scores"][0].T.sigmoid().double().numpy()
    np.testing.assert_allclose(obj, d[f"obj_{tag}"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(cls.max(1), d[f"cls_max_{tag}"], rtol=0, atol=1e-4)
    top2 = np.sort(cls, 1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2e-5  # rows whose best class is not a near-tie (our errors are below 1e-5)
    assert clear.mean() > 0.95
    assert (cls.argmax(1) == d[f"cls_argmax_{tag}"])[clear].all()
    ours = np.concatenate((y[:, :4], obj[:, None], cls), 1).sum(0)
    np.testing.assert_allclose(ours, d[f"colsum_{tag}"], rtol=1e-5, atol=1e-3)


def test_ultralytics_predictor_gives_the_official_detections(converted_checkpoint):
    # YOLOX's postprocess: score = obj * best class, keep score >= conf, NMS (class-agnostic, as tools/demo.py runs
    # it), applied here to the official outputs with torchvision's NMS; Ultralytics' predictor (fused convs, its own
    # NMS) runs the converted model on the same pixels.
    d, x = official_outputs("nano", "nonsquare")
    conf, iou = 0.3, 0.45
    score = d["obj_nonsquare"] * d["cls_max_nonsquare"]
    assert np.abs(score - conf).min() > 1e-4  # no official score sits at the threshold
    keep = np.flatnonzero(score >= conf)
    xywh = torch.from_numpy(d["boxes_nonsquare"][keep]).double()
    xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
    kept = torchvision.ops.nms(xyxy, torch.from_numpy(score[keep]).double(), iou).numpy()
    assert 5 <= len(kept) <= 300

    result = YOLO(str(converted_checkpoint("nano"))).predict(x, conf=conf, iou=iou, agnostic_nms=True, verbose=False)
    boxes = result[0].boxes
    order = boxes.conf.argsort(descending=True)
    np.testing.assert_allclose(boxes.conf[order].numpy(), score[keep][kept], rtol=0, atol=1e-4)
    np.testing.assert_allclose(boxes.xyxy[order].double().numpy(), xyxy[kept].numpy(), rtol=0, atol=0.02)
    assert (boxes.cls[order].numpy() == d["cls_argmax_nonsquare"][keep][kept]).all()


# ------------------------------------------------------------------------------------------ classes and variants
def test_attention_variant_takes_every_official_tensor_and_keeps_its_attention_rows():
    model = DetectionModel("yolox-nano-ELA-S.yaml", verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = official_state_dict("nano")
    report = load_official_weights(model, state)
    assert report["attention_rows"] == [5, 8, 12, 16, 21, 25, 29] and report["reinitialised"] == []
    assert report["mapped"] == report["official"] == len(state)
    after = model.state_dict()
    for key, official in official_key_map(model).items():
        if official is None:
            torch.testing.assert_close(after[key], before[key])  # untouched
        elif official == "backbone.backbone.stem.conv.conv.weight":
            torch.testing.assert_close(after[key], fold_bgr255_into_stem(state[official]))
        else:
            torch.testing.assert_close(after[key], state[official].to(after[key].dtype))


def test_a_different_class_count_reinitialises_only_the_class_branch():
    model = DetectionModel("yolox-nano.yaml", nc=3, verbose=False)
    fresh_bias = model.model[-1].cls_preds[0].bias.detach().clone()
    report = load_official_weights(model, official_state_dict("nano"))
    assert report["reinitialised"] == [f"head.cls_preds.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert report["mapped"] == report["official"] - 6
    torch.testing.assert_close(model.model[-1].cls_preds[0].bias, fresh_bias)  # the prior-probability bias stays


def test_coco_names_come_from_ultralytics_and_a_changed_file_fails_the_self_check(monkeypatch, tmp_path):
    import ultralytics

    from attnyolo.errors import UnsupportedUltralyticsError
    from attnyolo.integration import version

    names = coco_class_names()
    assert len(names) == 80 and (names[0], names[2], names[16], names[79]) == ("person", "car", "dog", "toothbrush")
    (tmp_path / "cfg" / "datasets").mkdir(parents=True)
    (tmp_path / "cfg" / "datasets" / "coco.yaml").write_text("names:\n  0: person\n")
    monkeypatch.setattr(ultralytics, "__file__", str(tmp_path / "__init__.py"))
    monkeypatch.setattr(version, "installed_version", lambda: "8.9.0")
    monkeypatch.setattr(version, "SELF_CHECKS", {"coco_names": version.SELF_CHECKS["coco_names"]})
    try:
        with pytest.raises(UnsupportedUltralyticsError, match="changed ultralytics/cfg/datasets/coco.yaml"):
            version.self_check()
    finally:
        coco_class_names.cache_clear()  # the next caller reads the real file again

"""YOLOX built from cfg/yolox: the official sizes, the head's outputs, Nano's depthwise convs, attention variants."""

import copy
import functools
import math

import pytest
import torch
from ultralytics.nn.modules import Conv, Focus
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import torch_utils

import attnyolo
from attnyolo.analysis.yolox import yolox_gflops
from attnyolo.errors import ModelConfigError
from attnyolo.integration import names
from attnyolo.layers.registry import kind_names, layer_classes
from attnyolo.yolox import DWSepConv, YOLOXDetect

# Official YOLOX table (github Megvii-BaseDetection/YOLOX, README.md): name -> (params in M, GFLOPs, test size, width).
OFFICIAL = {
    "nano": (0.91, 1.08, 416, 0.25),
    "tiny": (5.06, 6.45, 416, 0.375),
    "s": (9.0, 26.8, 640, 0.50),
    "m": (25.3, 73.8, 640, 0.75),
    "l": (54.2, 155.6, 640, 1.00),
    "x": (99.1, 281.9, 640, 1.25),
}
ATTENTION_ROWS = [5, 8, 12, 16, 21, 25, 29]  # dark3, dark4, dark5 outputs; after the four PAFPN concatenations


def build(name, **kw):
    return DetectionModel(name, verbose=False, **kw)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@functools.cache
def measured(size):
    """Params, Ultralytics GFLOPs and YOLOX-convention GFLOPs of one size (each model is built once, then freed)."""
    model = build(f"yolox-{size}.yaml")
    imgsz = OFFICIAL[size][2]
    # torch_utils.get_flops, looked up at call time as Ultralytics' model_info does: attnyolo repairs it on import
    return n_params(model) / 1e6, torch_utils.get_flops(model, imgsz), yolox_gflops(model, imgsz)


@pytest.mark.parametrize("size", OFFICIAL)
def test_parameter_count_matches_the_official_table(size):
    assert measured(size)[0] == pytest.approx(OFFICIAL[size][0], rel=0.02)


@pytest.mark.parametrize("size", OFFICIAL)
def test_gflops_match_the_official_table_as_yolox_counts_them(size):
    # YOLOX's own counting (thop 0.0.31 at 64x64, scaled): checks the architecture, not the counter's conventions
    assert measured(size)[2] == pytest.approx(OFFICIAL[size][1], rel=0.02)


NANO_BN_NOTE = (
    "Ultralytics' profiler counts BatchNorm as 4 FLOPs per element, the thop behind YOLOX's table 2; with Nano's "
    "depthwise convs that is +3% (1.11 vs 1.08 GFLOPs at 416). Same architecture: see the YOLOX-convention test."
)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=NANO_BN_NOTE)) if s == "nano" else s
        for s in OFFICIAL
    ],
)
def test_gflops_by_ultralytics_profiler_within_two_percent(size):
    assert measured(size)[1] == pytest.approx(OFFICIAL[size][1], rel=0.02)


def test_ultralytics_profiler_counts_focus_stem_models():
    # Unfixed, get_flops builds a 12-channel probe image for a Focus stem and reports 0 GFLOPs.
    assert measured("nano")[1] == pytest.approx(1.11, abs=0.01)


def test_head_outputs_in_training_inference_and_export():
    model = build("yolox-nano.yaml", nc=3)
    head = model.model[-1]
    assert isinstance(head, YOLOXDetect) and head.stride.tolist() == [8.0, 16.0, 32.0]
    assert head.f == [17, 20, 23] and head.hidden == 64
    x = torch.rand(2, 3, 64, 96)
    n = 8 * 12 + 4 * 6 + 2 * 3  # one point per cell at strides 8, 16, 32
    raw = model.train()(x)
    assert raw["boxes"].shape == (2, 4, n) and raw["obj"].shape == (2, 1, n) and raw["scores"].shape == (2, 3, n)
    assert [tuple(f.shape[2:]) for f in raw["feats"]] == [(8, 12), (4, 6), (2, 3)]
    model.eval()
    with torch.no_grad():
        y, raw = model(x)
        assert y.shape == (2, 4 + 3, n)
        head.export = True
        try:
            assert model(x).shape == (2, 7, n)
        finally:
            head.export = False


def test_decode_and_score_follow_yolox():
    # With the last convs' weights zeroed, t = bias everywhere: xy = (grid + t_xy) * s, wh = exp(t_wh) * s, and the
    # score is sigmoid(obj) * sigmoid(cls) = 0.01 * 0.01 from the prior initialisation.
    model = build("yolox-nano.yaml", nc=2).eval()
    head = model.model[-1]
    with torch.no_grad():
        for conv in (*head.reg_preds, *head.obj_preds, *head.cls_preds):
            conv.weight.zero_()
        for conv in head.reg_preds:
            conv.bias.copy_(torch.tensor([0.25, 0.5, math.log(2.0), 0.0]))
        y = model(torch.rand(1, 3, 64, 64))[0][0]  # (4 + nc, N)
    # first level: stride 8, 8x8 cells, row-major; cell (gx=3, gy=1) is point 1 * 8 + 3
    torch.testing.assert_close(y[:4, 11], torch.tensor([(3 + 0.25) * 8, (1 + 0.5) * 8, 2 * 8, 8.0]))
    # last level: stride 32, 2x2 cells; its last point is cell (1, 1)
    torch.testing.assert_close(y[:4, -1], torch.tensor([(1 + 0.25) * 32, (1 + 0.5) * 32, 2 * 32, 32.0]))
    torch.testing.assert_close(y[4:], torch.full_like(y[4:], 1e-4))
    head.xyxy = True  # what exporters request for embedded NMS
    with torch.no_grad():
        y = model(torch.rand(1, 3, 64, 64))[0][0]
    torch.testing.assert_close(y[:4, 11], torch.tensor([26.0 - 8, 12.0 - 4, 26.0 + 8, 12.0 + 4]))


def test_initialisation_prior_and_batchnorm_settings():
    model = build("yolox-s.yaml")
    head = model.model[-1]
    for conv in (*head.cls_preds, *head.obj_preds):
        torch.testing.assert_close(conv.bias.sigmoid(), torch.full_like(conv.bias, 0.01))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)


def dense_kxk(model):
    return [m for m in model.modules() if type(m) is Conv and m.conv.kernel_size[0] > 1 and m.conv.groups == 1]


def test_nano_is_depthwise_except_the_stem_and_tiny_is_not():
    nano, tiny = build("yolox-nano.yaml"), build("yolox-tiny.yaml")
    separable = [m for m in nano.modules() if isinstance(m, DWSepConv)]
    # backbone: 4 downsampling + 1+3+3+1 bottleneck 3x3; PAFPN: 2 downsampling + 4 bottleneck; head: 3 levels x 4
    assert len(separable) == 4 + 8 + 2 + 4 + 12
    assert all(
        m.dconv.conv.groups == m.dconv.conv.in_channels and m.pconv.conv.kernel_size == (1, 1) for m in separable
    )
    assert dense_kxk(nano) == [nano.model[0].conv] and isinstance(nano.model[0], Focus)
    for row in (10, 14):  # PAFPN lateral_conv0 and reduce_conv1 stay plain 1x1 convs
        assert type(nano.model[row]) is Conv and nano.model[row].conv.kernel_size == (1, 1)
    assert not any(isinstance(m, DWSepConv) for m in tiny.modules())
    assert nano.model[10].f == -1 and nano.model[18].f == -1  # row routing survives the swap
    assert isinstance(nano.model[18], DWSepConv) and nano.model[18].dconv.conv.stride == (2, 2)


def test_fused_model_gives_the_same_predictions():
    model = build("yolox-nano.yaml", nc=3).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so that folding them is tested
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        after = model.fuse(verbose=False)(x)[0]
    assert not any(hasattr(m, "bn") for m in model.modules() if isinstance(m, Conv))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("name", "scale"), [("yolox-nano", "n"), ("yolox-tiny", "t"), ("yolox_s", "s"), ("yolox-x-ELA-S", "x")]
)
def test_size_names_choose_the_scale(name, scale):
    d = names.with_yolox_scale({"scales": dict.fromkeys("ntsmlx"), "scale": "", "yaml_file": f"{name}.yaml"})
    assert d["scale"] == scale
    assert names.with_yolox_scale({"scales": dict.fromkeys("ntsmlx"), "yaml_file": "yolox.yaml"}).get("scale") is None


def test_yolox_spellings_build_the_same_model():
    assert n_params(build("yolox_s.yaml")) == n_params(build("yolox-s.yaml"))
    assert build("yolox-t.yaml").model[-1].hidden == int(256 * 0.375) == build("yolox-tiny.yaml").model[-1].hidden


@pytest.mark.parametrize("name", ["yolox-nano.yaml", "yolox-tiny-ELA-S.yaml"])
def test_model_dict_rebuilds_the_same_model(name):
    # Trainers, resumes and DDP workers rebuild from model.yaml, whose scale Ultralytics left empty: the file name
    # it records must still choose the size (and Nano's depthwise convs).
    model = build(name)
    assert model.yaml["scale"] == ""
    rebuilt = build(copy.deepcopy(model.yaml))
    assert n_params(rebuilt) == n_params(model)
    assert [type(m) for m in rebuilt.modules()] == [type(m) for m in model.modules()]


def test_unknown_attention_kind_is_a_readable_error():
    with pytest.raises(ModelConfigError, match=r"'ELA-Q' is not an attention kind.*ELA-S"):
        build("yolox-s-ELA-Q.yaml")


def test_head_must_be_the_last_row():
    d = {
        "nc": 2,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [64, 3, 2]]],
        "head": [[[0, 1, 2], 1, "YOLOXDetect", ["nc", 32]], [-1, 1, "Conv", [8, 1, 1]]],
    }
    with pytest.raises(ModelConfigError, match="as the last row"):
        build(d)


@pytest.mark.parametrize("kind", kind_names())
def test_attention_variants_of_nano(kind):
    model = build(f"yolox-nano-{kind}.yaml")
    layers = [(i, m) for i, m in enumerate(model.model) if isinstance(m, tuple(layer_classes().values()))]
    assert [i for i, _ in layers] == ATTENTION_ROWS
    # three backbone outputs (dark3/4/5) and the four concatenations: 64, 128, 256 | 256, 128, 128, 256 at Nano
    assert [m.channels for _, m in layers] == [64, 128, 256, 256, 128, 128, 256]
    assert model.model[-1].f == [22, 26, 30]
    extra = sum(n_params(m) for _, m in layers)
    assert n_params(model) == n_params(build("yolox-nano.yaml")) + extra  # everything else is the plain YOLOX


@pytest.mark.parametrize("name", ["yolox-s-CoordAtt.yaml", "yolox-s-ELA-S.yaml"])
def test_attention_variants_of_s_train_and_infer(name):
    model = build(name, nc=3)
    layers = [m for m in model.modules() if isinstance(m, tuple(layer_classes().values()))]
    assert [m.channels for m in layers] == [128, 256, 512, 512, 256, 256, 512]
    batch = {
        "img": torch.rand(1, 3, 64, 64),
        "batch_idx": torch.tensor([0.0]),
        "cls": torch.tensor([[1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]]),
    }
    loss, _ = model.train().loss(batch)
    loss.sum().backward()
    assert all(p.grad is not None for m in layers for p in m.parameters())
    with torch.no_grad():
        assert model.eval()(batch["img"])[0].shape == (1, 7, 64 + 16 + 4)


def test_register_is_idempotent_and_covers_yolox():
    from ultralytics.cfg import get_cfg
    from ultralytics.nn import tasks

    wrapped = (tasks.parse_model, tasks.DetectionModel.init_criterion, torch_utils.get_flops)
    attnyolo.register()
    assert (tasks.parse_model, tasks.DetectionModel.init_criterion, torch_utils.get_flops) == wrapped
    assert attnyolo.is_registered() and tasks.YOLOXDetect is YOLOXDetect
    stock = build("yolov8n.yaml")
    stock.args = get_cfg()  # what Ultralytics' own criterion reads, as its trainer sets it
    assert type(stock.init_criterion()).__name__ == "v8DetectionLoss"  # stock models untouched

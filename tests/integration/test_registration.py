"""The seam into Ultralytics: registration, channel inference, YAML families, errors, checkpoints, DDP, ONNX."""

import copy
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics import YOLO  # noqa: I001  (after attnyolo on purpose: import order must not matter, see below)
from ultralytics.cfg import get_cfg
from ultralytics.nn import tasks
from ultralytics.nn.tasks import DetectionModel

import attnyolo
from attnyolo.layers.registry import get_kind, kind_names, layer_classes

REPO = Path(__file__).resolve().parents[2]
FAMILIES = ("yolov5", "yolov8", "yolo11")
SCALES = "nsmlx"
SHIPPED = sorted(REPO.glob("cfg/**/*.yaml"))
# Every shipped YAML at every scale. The large scales build, train a step and run in about a second each: they
# belong to the slow tier, and so does classic YOLOv5's m (its rows are the same at every scale).
SHIPPED_SCALES = [
    pytest.param(
        cfg,
        scale,
        id=f"{scale}-{cfg.name}",
        marks=[pytest.mark.slow] if scale in "lx" or (scale == "m" and cfg.name.startswith("yolov5-classic")) else [],
    )
    for scale in SCALES
    for cfg in SHIPPED
]
BASELINES = {"yolox.yaml", "yolov5-classic.yaml"}  # plain architectures Ultralytics does not ship, so they are ours too


def build(cfg, **kw):
    """Build a detection model quietly, with the default hyperparameters its loss reads (as a trainer sets them)."""
    model = DetectionModel(cfg, verbose=False, **kw)
    model.args = get_cfg()
    return model


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def attention_layers(model):
    return [m for m in model.modules() if isinstance(m, tuple(layer_classes().values()))]


def fake_batch(n_img=2, h=64, w=96):
    """A detection batch in the format Ultralytics' loss expects (normalised xywh boxes)."""
    return {
        "img": torch.rand(n_img, 3, h, w),
        "cls": torch.tensor([[0.0], [1.0], [2.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.3, 0.6, 0.2, 0.2], [0.6, 0.4, 0.5, 0.3]]),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
    }


def test_package_import_registers_and_register_is_idempotent():
    assert attnyolo.is_registered()
    parse, check_yaml, fuse = tasks.parse_model, tasks.check_yaml, tasks.BaseModel.fuse
    attnyolo.register()
    attnyolo.register()
    assert (tasks.parse_model, tasks.check_yaml, tasks.BaseModel.fuse) == (parse, check_yaml, fuse)
    assert not hasattr(parse._attnyolo_original, "_attnyolo_original")  # wrapped exactly once
    for name, cls in layer_classes().items():
        assert getattr(tasks, name) is cls
    from ultralytics.nn.modules import CBAM

    assert CBAM is not attnyolo.CBAMAttention and "CBAM" not in layer_classes()  # Ultralytics' own CBAM is left alone


@pytest.mark.parametrize("stock", ["yolov5n.yaml", "yolov8s.yaml", "yolo11n.yaml", "yolo11m.yaml", "yolov8n-seg.yaml"])
def test_stock_yamls_build_exactly_as_without_registration(stock):
    ours = build(stock) if "seg" not in stock else tasks.SegmentationModel(stock, verbose=False)
    d = copy.deepcopy(ours.yaml)
    plain_seq, plain_save = tasks.parse_model._attnyolo_original(copy.deepcopy(d), ch=3, verbose=False)
    assert n_params(ours.model) == n_params(plain_seq)
    assert [type(m).__name__ for m in ours.model] == [type(m).__name__ for m in plain_seq]
    assert ours.save == plain_save


def test_fork_name_builds_classic_yolov5_with_coordatt_after_p3_p4_p5():
    from attnyolo.yolov5.head import YOLOv5Detect

    model = YOLO("yolov5s_Coordinate_attention.yaml").model
    assert isinstance(model.model[-1], YOLOv5Detect)  # the forks' model is anchor-based YOLOv5, not YOLOv5u
    assert model.yaml["attention"] == "CoordAtt"
    assert Path(model.yaml["yaml_file"]).stem == "yolov5s_Coordinate_attention"
    ca = [(m.i, m) for m in model.model if isinstance(m, attnyolo.CoordAtt)]
    assert [i for i, _ in ca] == [5, 8, 11]
    # yolov5s: P3/P4/P5 stage widths 256/512/1024 x 0.5; CoordAtt mip = max(8, C // 32)
    assert [m.conv1.in_channels for _, m in ca] == [128, 256, 512]
    assert [m.conv1.out_channels for _, m in ca] == [8, 8, 16]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", kind_names())
def test_every_kind_builds_by_name_and_matches_the_stock_baseline(family, kind):
    model = build(f"{family}n-{kind}.yaml")
    layers = attention_layers(model)
    assert len(layers) == 3
    layer_name, kind_args = get_kind(kind).yaml_name, get_kind(kind).args
    assert all(type(m).__name__ == layer_name for m in layers)
    if kind.startswith("ELA"):
        assert all(m.variant == kind_args[0] for m in layers)
    # Removing the three attention rows must give the stock model exactly: same parameters elsewhere.
    stock = build(f"{family}n.yaml")
    extra = sum(n_params(m) for m in layers)
    assert n_params(model) == n_params(stock) + extra


@pytest.mark.parametrize(("cfg", "scale"), SHIPPED_SCALES)
def test_shipped_yaml_builds_every_scale_forward_backward_nonsquare(cfg, scale):
    d = yaml.safe_load(cfg.read_text())
    d["scale"], d["yaml_file"] = scale, str(cfg)
    model = build(d)
    layers = attention_layers(model)
    assert layers or cfg.name in BASELINES, "a shipped YAML without attention layers"
    # the channels each layer was built for are the channels that reach it
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.__setitem__(id(m), a[0].shape[1])) for m in layers]
    model.train()
    batch = fake_batch()
    loss, _ = model.loss(batch)
    loss.sum().backward()
    for h in hooks:
        h.remove()
    for m in layers:
        assert seen[id(m)] == m.channels
    grads = [p.grad for m in (layers or [model]) for p in m.parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    # output shape of a layer equals its input (non-square input 64x96)
    model.eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 64, 96))
    na = getattr(model.model[-1], "na", 1)  # anchors per cell: 3 for classic YOLOv5, 1 for anchor-free heads
    assert y[0].shape[-1] == na * (8 * 12 + 4 * 6 + 2 * 3)  # predictions at strides 8, 16, 32


def test_channel_argument_follows_conv_scaling_and_max_channels():
    # yolo11m clips 1024 to max_channels 512 before width 1.0: the P5 row's [1024] must agree with 512 channels.
    model = build("yolo11m-CoordAtt.yaml")
    assert [m.channels for m in attention_layers(model)] == [512, 512, 512]
    model = build("yolov8x-ECA.yaml")  # width 1.25, max_channels 512: P3 256*1.25=320, P4/P5 512*1.25=640
    assert [m.channels for m in attention_layers(model)] == [320, 640, 640]


def load_cfg(name):
    d = yaml.safe_load(next(REPO.glob(f"cfg/**/{name}")).read_text())
    d["yaml_file"] = name
    return d


def test_wrong_channel_argument_names_file_row_and_both_numbers():
    d = load_cfg("yolov8-attention.yaml")
    d["scale"] = "s"
    d["backbone"][8][3] = [384]  # P4 row fed by 512 * 0.5 = 256 channels, but 384 * 0.5 = 192 written
    with pytest.raises(attnyolo.ModelConfigError) as e:
        build(d)
    msg = str(e.value)
    assert "yolov8-attention.yaml" in msg and "row 8" in msg and "192" in msg and "256" in msg
    d["backbone"][8][3] = [256]  # the real channel count as written (forks that do not scale attention rows)
    assert [m.channels for m in attention_layers(build(d))] == [128, 256, 512]


def test_channel_argument_may_be_omitted_or_null():
    d = load_cfg("yolov8-attention.yaml")
    d["scale"] = "n"
    d["backbone"][5][3] = []
    d["backbone"][8][3] = [None]
    d["head"].insert(0, [-1, 1, "ELA", ["S"]])  # a raw ELA row without channels, fed by SPPF (256 at n)
    for row in d["head"][1:]:  # shift head references past the inserted row
        f = row[0]
        row[0] = [x + 1 if x >= 13 else x for x in f] if isinstance(f, list) else f
    model = build(d)
    assert [m.channels for m in attention_layers(model)] == [64, 128, 256, 256]


def test_unknown_layer_name_lists_known_names_and_close_matches():
    d = load_cfg("yolov8-attention.yaml")
    d["backbone"][5][2] = "CoordAttn"
    with pytest.raises(attnyolo.ModelConfigError) as e:
        build(d)
    msg = str(e.value)
    assert "row 5" in msg and "'CoordAttn'" in msg and "Did you mean CoordAtt" in msg and "Fix:" in msg
    assert "DetectionModel" not in msg and "Ensemble" not in msg  # close layer names only, not every name there is


def test_unknown_attention_kind_and_malformed_row():
    d = load_cfg("yolov8-attention.yaml")
    d["attention"] = "ELA-X"
    with pytest.raises(attnyolo.ModelConfigError, match=r"ELA-X.*Did you mean"):
        build(d)
    d = load_cfg("yolov8-attention.yaml")
    d["head"][2] = [-1, 3, "C2f"]
    with pytest.raises(attnyolo.ModelConfigError, match=r"row 15: .*not \[from, number, module, args\]"):
        build(d)


def test_ela_tiny_on_16_channels_builds_with_logged_fallback(caplog, monkeypatch):
    from attnyolo.layers import efficient_local_attention

    monkeypatch.setattr(efficient_local_attention, "_WARNED", set())  # warnings are once per process
    d = load_cfg("yolov8-attention.yaml")
    d["scale"], d["attention"] = "n", "ELA-T"
    d["backbone"].insert(3, [-1, 1, "Attention", [128]])  # after the P2 C2f: 128 * 0.25 = 32 channels, G = 32 fits
    d["backbone"].insert(1, [-1, 1, "Attention", [64]])  # 16 channels: G = 32 cannot divide, falls back
    for row in d["backbone"][2:] + d["head"]:
        f = row[0]
        row[0] = [x + 2 if x >= 1 else x for x in f] if isinstance(f, list) else f
    with caplog.at_level("WARNING", logger="attnyolo"):
        model = build(d)
    layers = attention_layers(model)
    assert [m.channels for m in layers][:2] == [16, 32]
    assert layers[0].gn_groups == 16 and layers[1].gn_groups == 32
    assert any("16" in r.getMessage() for r in caplog.records)


def test_fuse_folds_coordatt_batchnorm_with_unchanged_outputs():
    model = build("yolov8n-CoordAtt.yaml").eval()
    for m in attention_layers(model):  # non-trivial BN statistics so folding has something to do
        m.bn1.running_mean.uniform_(-1, 1)
        m.bn1.running_var.uniform_(0.5, 2)
        m.bn1.weight.data.uniform_(0.5, 1.5)
        m.bn1.bias.data.uniform_(-0.5, 0.5)
    x = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    assert all(not isinstance(m.bn1, torch.nn.BatchNorm2d) for m in attention_layers(model))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)


def test_flops_counted_by_ultralytics_profiler():
    from ultralytics.utils.torch_utils import get_flops

    base = get_flops(build("yolov8n.yaml"), imgsz=640)
    for kind in kind_names():
        flops = get_flops(build(f"yolov8n-{kind}.yaml"), imgsz=640)
        assert flops > base > 0, kind  # the smallest addition, ECA's, is about 0.002 GFLOPs on yolov8n


def one_step(model):
    """One SGD step on a fixed batch: the checkpoint must carry trained (not freshly initialised) weights."""
    args = model.args
    model.args = get_cfg()  # the loss reads hyperparameters as attributes, as a trainer provides them
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss, _ = model.loss(fake_batch())
    loss.sum().backward()
    opt.step()
    model.args, model.criterion = args, None
    return model


def run_py(code, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_checkpoint_reloads_in_fresh_process_without_autoinstall(tmp_path):
    yolo = YOLO("yolov8n-ELA-S.yaml")
    one_step(yolo.model)
    yolo.model.eval()
    ckpt = tmp_path / "best.pt"
    yolo.save(ckpt)
    x = torch.rand(1, 3, 96, 128)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = YOLO(str(ckpt)).model.float().eval()(x)[0]
    torch.save(expected, tmp_path / "expected.pt")
    code = f"""
        import torch, attnyolo
        import ultralytics.nn.tasks as tasks
        def refuse(*a, **k):
            raise SystemExit(f"AutoInstall attempted: {{a}}")
        tasks.check_requirements = refuse  # any attempt to pip-install a missing module fails the test
        from ultralytics import YOLO
        m = YOLO(r"{ckpt}").model.float().eval()
        assert sum(isinstance(l, attnyolo.ELA) for l in m.modules()) == 3
        with torch.no_grad():
            y = m(torch.load(r"{tmp_path / "x.pt"}"))[0]
        torch.testing.assert_close(y, torch.load(r"{tmp_path / "expected.pt"}"), rtol=1e-5, atol=1e-4)
        print("OK")
    """
    r = run_py(code)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    # A process that never imports attnyolo still loads it: unpickling imports attnyolo, which registers.
    r = run_py(f"from ultralytics import YOLO; m = YOLO(r'{ckpt}'); print(type(m.model.model[5]).__module__)")
    assert r.returncode == 0 and "attnyolo.layers.efficient_local_attention" in r.stdout, r.stderr[-3000:]


@pytest.mark.slow
def test_ddp_worker_state_rebuilds_with_registration(tmp_path):
    """Ultralytics' DDP launcher cloudpickles the trainer's model; a worker only has what unpickling imports."""
    import cloudpickle
    from ultralytics.utils.patches import torch_save

    model = build("yolo11n-CoordAtt.yaml")
    torch_save({"model": model}, tmp_path / "state.pt", pickle_module=cloudpickle)
    code = f"""
        from ultralytics.utils.patches import torch_load
        state = torch_load(r"{tmp_path / "state.pt"}", map_location="cpu")
        from ultralytics.nn.tasks import DetectionModel
        rebuilt = DetectionModel(state["model"].yaml, verbose=False)  # workers rebuild from the model dict
        print(sum(p.numel() for p in rebuilt.parameters()))
    """
    r = run_py(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split()[-1]) == n_params(model)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolov8n-CoordAtt.yaml", "yolo11n-ELA-B.yaml"])
def test_onnx_export_dynamic_matches_pytorch(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    yolo = YOLO(name)
    one_step(yolo.model)  # BN statistics and weights away from their initial values
    yolo.model.eval()
    pt = tmp_path / "m.pt"
    yolo.save(pt)
    model = YOLO(str(pt))
    onnx_path = model.export(format="onnx", dynamic=True, imgsz=128, simplify=False, device="cpu")
    torch_model = YOLO(str(pt)).model.float().fuse(verbose=False).eval()
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    for h, w in ((128, 128), (96, 160)):  # a size other than the export size: the graph must be dynamic
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = torch_model(x)[0].numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1e-3 * max(1.0, abs(expected).max())


@pytest.mark.parametrize(
    ("name", "layer", "count"),
    [
        ("yolov8n.yaml", None, 0),
        ("yolo11s-ELA-S.yaml", "ELA", 3),
        ("yolov5m-CoordAtt.yaml", "CoordAtt", 3),
        ("yolox-nano-SE.yaml", "SEAttention", 7),
        ("yolov5_Coordinate_attention.yaml", "CoordAtt", 3),
    ],
)
def test_check_model_source_accepts_every_name_the_builder_accepts(name, layer, count):
    from attnyolo.integration.names import check_model_source

    check_model_source(name)  # no exception, and the builder agrees on what the name means:
    built = [type(m).__name__ for m in attention_layers(DetectionModel(name, verbose=False))]
    assert built == [layer] * count


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("yolo11s-ELA-X.yaml", "Did you mean yolo11s-ELA-T.yaml"),
        ("yolov8n-Coordatt.yaml", "Did you mean yolov8n-CoordAtt.yaml"),
        ("no/such/dir/model.yaml", "is neither a file nor a model name"),
        ("no/such/best.pt", "models=no/such/best.pt does not exist"),
    ],
)
def test_check_model_source_names_the_value_and_close_matches(name, expected):
    from attnyolo.integration.names import check_model_source

    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        check_model_source(name, "models")

"""Checkpoints of ultralytics/yolov5 and its forks: read as data, rebuilt, loaded strictly, refused when unsafe."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel
from yolov5_helpers import FIXTURES, fixture_json, fixture_npz, write_classic_checkpoint

import attnyolo  # noqa: F401
from attnyolo.engine.importing import import_weights
from attnyolo.errors import CheckpointError
from attnyolo.integration.checkpoints import _torch_registered_names, pickle_globals, zip_pickle_record
from attnyolo.yolov5 import checkpoint
from attnyolo.yolov5.head import YOLOv5Detect

CHECKPOINTS = fixture_json("checkpoints.json")
LAYOUTS = fixture_json("classic_layouts.json")  # what the real v7.0 code wrote (tests/fixtures/README.md)
SHIPPED = ("tiny_official_train.pt", "tiny_official_stripped.pt", "tiny_ca_fork.pt")


def rewrite_pickle(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    """Copy a torch zip checkpoint with ``old`` replaced by ``new`` in its pickle (other records unchanged)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, data.replace(old, new) if item.filename.endswith("data.pkl") else data)
    return dst


@pytest.mark.parametrize("name", SHIPPED)
def test_the_pickle_globals_are_listed_without_unpickling(name):
    found = set(pickle_globals(zip_pickle_record(FIXTURES / name)))
    expected = {g.replace("__builtin__.", "builtins.") for g in CHECKPOINTS[name]["pickle_globals"]}
    assert found == expected
    assert checkpoint.is_classic_checkpoint(FIXTURES / name)


@pytest.mark.parametrize("name", SHIPPED)
def test_yolo_opens_a_classic_checkpoint_with_its_names_stride_and_anchors(name):
    yolo = YOLO(str(FIXTURES / name))
    facts = CHECKPOINTS[name]["model"]
    head = yolo.model.model[-1]
    assert yolo.task == "detect" and isinstance(head, YOLOv5Detect)
    assert yolo.model.stride.tolist() == facts["model_stride"][0] == head.stride.tolist()
    assert head.anchors.tolist() == facts["detect_anchors_buffer"][0]  # grid units, as stored
    names = {0: "cat", 1: "dog", 2: "bird"} if "ca" in name else {0: "person", 1: "bicycle", 2: "car"}
    assert {k: yolo.names[k] for k in range(3)} == names  # a list in the CA file, a dict in the official ones
    assert sum(p.numel() for p in yolo.model.parameters()) == facts["n_params"]
    assert "models" not in sys.modules


def test_native_checkpoints_are_not_taken_for_classic_ones(tmp_path):
    model = DetectionModel("yolov5n-classic.yaml", nc=2, verbose=False)
    path = tmp_path / "native.pt"
    torch.save({"model": model, "train_args": {}}, path)
    assert not checkpoint.is_classic_checkpoint(path)
    assert isinstance(YOLO(str(path)).model.model[-1], YOLOv5Detect)  # Ultralytics' own loading, unchanged
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    assert not checkpoint.is_classic_checkpoint(junk)


def test_import_weights_writes_a_native_checkpoint_with_the_same_outputs(tmp_path, capsys):
    from attnyolo.commands.import_weights import main

    out = tmp_path / "imported.pt"
    assert main([f"source={FIXTURES / 'tiny_ca_fork.pt'}", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "format: yolov5-classic" in printed and "names: cat, dog, bird" in printed and "tensors: 382" in printed
    assert not checkpoint.is_classic_checkpoint(out)
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = YOLO(str(FIXTURES / "tiny_ca_fork.pt")).model.eval()(x)[0]
        imported = YOLO(str(out)).model.eval()(x)[0]
    assert torch.equal(direct, imported)


def test_import_weights_refuses_another_class_count(tmp_path):
    with pytest.raises(CheckpointError, match=r"nc=5: .*trained for 3 classes"):
        import_weights(FIXTURES / "tiny_ca_fork.pt", tmp_path / "x.pt", nc=5)
    assert not (tmp_path / "x.pt").exists()


def test_an_unknown_fork_class_is_named_in_one_line(tmp_path):
    bad = rewrite_pickle(FIXTURES / "tiny_ca_fork.pt", tmp_path / "fork.pt", b"CoordAtt", b"CBAMFork")
    with pytest.raises(CheckpointError) as error:
        YOLO(str(bad))
    message = str(error.value)
    assert "models.common.CBAMFork" in message and "Fix:" in message and "\n" not in message


def test_a_file_that_names_anything_else_is_not_unpickled(tmp_path, monkeypatch):
    bad = rewrite_pickle(
        FIXTURES / "tiny_ca_fork.pt", tmp_path / "evil.pt", b"models.common\nh_sigmoid", b"posix\nsystem"
    )

    def must_not_load(*args, **kwargs):
        raise AssertionError("torch.load was called on a file with a forbidden global")

    monkeypatch.setattr(torch, "load", must_not_load)
    with pytest.raises(CheckpointError, match=r"refused to load: it references posix\.system.*trust_checkpoint=True"):
        checkpoint.read_classic(bad)


class _TouchesMarker:
    """Pickles as a call that creates ``marker``: the proof that the file was unpickled in full."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_a_classic_checkpoint_that_runs_code_is_refused_unless_trusted(tmp_path, monkeypatch):
    from attnyolo.integration.checkpoints import TRUST_ENV

    marker = tmp_path / "ran"
    path = write_classic_checkpoint(
        _tiny(V5_0_YAML), tmp_path / "best.pt", V5_0_YAML, extra={"x": _TouchesMarker(marker)}
    )
    monkeypatch.setenv(TRUST_ENV, "0")
    with pytest.raises(CheckpointError) as refused:
        YOLO(str(path))
    assert str(refused.value) == (
        f"{path}: refused to load: it references posix.system, which checkpoints written by YOLOv5 never contain. "
        "If you trust this file, pass trust_checkpoint=True (or set ATTNYOLO_TRUST_CHECKPOINTS=1)."
    )
    assert not marker.exists()
    monkeypatch.setenv(TRUST_ENV, "1")  # the user vouches for it: unpickled in full, YOLOv5's classes as stand-ins
    assert isinstance(YOLO(str(path)).model.model[-1], YOLOv5Detect)
    assert marker.exists() and "models" not in sys.modules


def test_stand_ins_cannot_run():
    raw = checkpoint.read_classic(FIXTURES / "tiny_ca_fork.pt")
    with pytest.raises(RuntimeError, match="cannot run"):
        raw["model"](torch.zeros(1, 3, 64, 64))


# ------------------------------------------------------------ other YOLOv5 versions, written in their file format
def _tiny(d: dict):
    torch.manual_seed(0)
    model = DetectionModel(d, verbose=False).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so a wrong mapping would show in the outputs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


V5_0_YAML = {  # YOLOv5 v5.0's layout: Focus stem, BottleneckCSP stages, SPP (tiny widths)
    "nc": 2,
    "depth_multiple": 0.33,
    "width_multiple": 0.125,
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "backbone": [
        [-1, 1, "Focus", [64, 3]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 3, "BottleneckCSP", [128]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 1, "SPP", [1024, [5, 9, 13]]],
    ],
    "head": [[[3, 4, 6], 1, "Detect", ["nc", "anchors"]]],
}


def test_activations_built_into_old_convs_are_taken_from_the_file(tmp_path):
    # YOLOv5 v3.x built LeakyReLU(0.1) into Conv without an `activation:` YAML key
    source = _tiny(V5_0_YAML)
    for m in source.modules():
        if hasattr(m, "act") and isinstance(m.act, torch.nn.SiLU):
            m.act = torch.nn.LeakyReLU(0.1)
    path = write_classic_checkpoint(source, tmp_path / "v3.pt", V5_0_YAML)
    loaded = YOLO(str(path)).model.eval()
    assert isinstance(loaded.model[1].act, torch.nn.LeakyReLU) and loaded.model[1].act.negative_slope == 0.1
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], source.half().float()(x)[0], atol=1e-4)


def test_a_coordatt_built_with_another_reduction_is_rebuilt_from_the_weights(tmp_path):
    # A YOLOv5 fork that scales CoordAtt like Conv builds [512, 512] as reduction 512 (hidden width 8), where AttnYOLO
    # reads [inp, oup] (hidden width 512 // 32 = 16): the weights decide.
    d = {
        "nc": 2,
        "depth_multiple": 1.0,
        "width_multiple": 1.0,
        "anchors": [[10, 13], [30, 61], [116, 90]],
        "backbone": [
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "Conv", [512, 3, 2]],
            [-1, 1, "CoordAtt", [512, 16]],  # built as the fork did: hidden width max(8, 512 // 512) = 8 ...
            [-1, 1, "Conv", [32, 3, 2]],
        ],
        "head": [[[2, 4, 5], 1, "Detect", ["nc", "anchors"]]],
    }
    source = _tiny(d)
    source.model[4].__init__(512, 512)  # ... i.e. CoordAtt(512, reduction=512)
    source.model[4].i, source.model[4].f, source.model[4].type = 4, -1, "CoordAtt"
    assert source.model[4].mip == 8
    fork_yaml = {**d, "backbone": [*d["backbone"][:4], [-1, 1, "CoordAtt", [512, 512]], d["backbone"][5]]}
    path = write_classic_checkpoint(source.eval(), tmp_path / "fork.pt", fork_yaml)
    ckpt, report = checkpoint.load(path)
    assert ckpt["model"].model[4].mip == 8 and "1 layers rebuilt" in report["coordatt"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ckpt["model"].float().eval()(x)[0], source.half().float()(x)[0], atol=1e-4)


def test_a_file_whose_weights_do_not_fit_its_yaml_says_so(tmp_path):
    source = _tiny(V5_0_YAML)
    wrong = {**V5_0_YAML, "width_multiple": 0.25}
    path = write_classic_checkpoint(source, tmp_path / "mismatch.pt", wrong)
    with pytest.raises(CheckpointError, match=r"do not fit the model its YAML builds .*of another shape"):
        checkpoint.load(path)


@pytest.mark.slow
def test_a_fresh_process_without_a_models_package_loads_predicts_and_never_imports_models(tmp_path):
    code = (
        "import sys\n"
        "import attnyolo\n"
        "from ultralytics import YOLO\n"
        "import numpy as np\n"
        f"m = YOLO({str(FIXTURES / 'tiny_ca_fork.pt')!r})\n"
        "r = m.predict(np.zeros((96, 128, 3), np.uint8), imgsz=128, conf=0.0, verbose=False)\n"
        "print(type(m.model.model[-1]).__name__, m.names[0], len(r[0].boxes) > 0, 'models' in sys.modules)\n"
    )
    env = {**os.environ, "ATTNYOLO_FUSED_KERNELS": "0"}  # loading is under test, not the kernels' first compile
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "YOLOv5Detect cat True False"
    assert "AutoInstall" not in out.stderr and "NOT forwards compatible" not in out.stderr


@pytest.mark.parametrize(
    ("version", "classes"),
    [("v5.0", {"models.yolo.Model", "models.common.Focus", "models.common.SPP"}), ("v6.2", {"models.common.SPPF"})],
)
def test_checkpoints_of_older_yolov5_releases_load_with_the_real_outputs(version, classes):
    import numpy as np

    path = FIXTURES / f"tiny_yolov5s_{version}.pt"  # written by that release's own code (tests/fixtures/README.md)
    assert classes <= set(pickle_globals(zip_pickle_record(path)))
    raw = checkpoint.read_classic(path)
    assert isinstance(raw["model"].names, list)  # releases before v7.0 store a list
    assert ("model.24.anchor_grid" in raw["model"].state_dict()) is (version == "v5.0")  # v5.0's buffer
    yolo = YOLO(str(path))
    assert yolo.names == {0: "circle", 1: "square"}
    arrays = np.load(FIXTURES / f"tiny_yolov5s_{version}.npz")
    x = torch.from_numpy(arrays["input_u8"]).float() / 255
    with torch.no_grad():
        _, raw_out = yolo.model.eval()(x)
        z = yolo.model.model[-1].decode(raw_out["raw"]).numpy()
    ref = arrays["z"]
    assert np.abs(z[..., :4] - ref[..., :4]).max() < 0.02 and np.abs(z[..., 4:] - ref[..., 4:]).max() < 1e-4


def test_reading_a_classic_file_leaves_the_process_allowlist_as_it_was(tmp_path):
    native = tmp_path / "native.pt"
    torch.save({"model": DetectionModel("yolov5n-classic.yaml", nc=2, verbose=False), "train_args": {}}, native)
    YOLO(str(native))  # the safe reader registers the torch.nn layers it allows, for the whole process
    before = _torch_registered_names()
    checkpoint.read_classic(FIXTURES / "tiny_ca_fork.pt")
    after = _torch_registered_names()  # + the torch.nn layers of the fork (ReLU6, ...), registered as the reader does
    assert before <= after and not any(name.startswith("models.") for name in after)  # no stand-in left behind
    YOLO(str(native))  # still loads safely
    assert isinstance(YOLO(str(FIXTURES / "tiny_ca_fork.pt")).model.model[-1], YOLOv5Detect)


def outputs_match_the_real_code(yolo, name: str) -> tuple[float, float]:
    """Largest box (pixels) and score differences between ``yolo`` and the real code's output stored in ``name``."""
    import numpy as np

    arrays = fixture_npz(name)
    x = torch.from_numpy(arrays["input_u8"]).float() / 255
    with torch.no_grad():
        _, raw_out = yolo.model.eval()(x)
        z = yolo.model.model[-1].decode(raw_out["raw"]).numpy()
    ref = arrays["z"]
    return float(np.abs(z[..., :4] - ref[..., :4]).max()), float(np.abs(z[..., 4:] - ref[..., 4:]).max())


@pytest.mark.parametrize("name", ["tiny_yolov5s_csp", "tiny_yolov3"])
def test_checkpoints_with_bottleneck_rows_load_with_the_real_outputs(name):
    # Written by the v7.0 code from BottleneckCSP (YOLOv5 before v4.0) and Bottleneck (YOLOv3) rows: Ultralytics'
    # Bottleneck has two 3x3 convs, so these files used to fail with "weights do not fit the model its YAML builds".
    path = FIXTURES / f"{name}.pt"
    facts = LAYOUTS["checkpoints"][f"{name}.pt"]
    assert set(facts["models_classes"]) <= set(pickle_globals(zip_pickle_record(path)))
    yolo = YOLO(str(path))
    assert sum(p.numel() for p in yolo.model.parameters()) == facts["n_params"]
    assert yolo.names == {0: "circle", 1: "square", 2: "star"}  # a dict (v7.0) in one, a list in the other
    box, score = outputs_match_the_real_code(yolo, f"{name}.npz")
    assert box < 0.02 and score < 1e-4


def test_a_fork_checkpoint_pickling_its_attention_as_ca_loads_with_the_real_outputs():
    # The v7.0 code with Hou et al.'s class pasted into models/common.py as `CA` (rows `CA, [256]`), as forks name it
    path = FIXTURES / "tiny_ca_named_fork.pt"
    assert "models.common.CA" in pickle_globals(zip_pickle_record(path))
    yolo = YOLO(str(path))
    assert [m.i for m in yolo.model.model if type(m).__name__ == "CoordAtt"] == [5, 8, 11]
    assert sum(p.numel() for p in yolo.model.parameters()) == LAYOUTS["checkpoints"][path.name]["n_params"]
    box, score = outputs_match_the_real_code(yolo, "tiny_ca_named_fork.npz")
    assert box < 0.02 and score < 1e-4


def test_the_fork_classes_read_are_the_yaml_aliases():
    from attnyolo.layers.spellings import SPELLINGS

    names = {f"models.common.{s.name}" for s in SPELLINGS if s.layer.__name__ in ("CoordAtt", "ELA")}
    assert names == set(checkpoint.FORK_ATTENTION_CLASSES) and names <= set(checkpoint.CLASSIC_CLASSES)
    assert {"models.common.CA", "models.common.CoordAttention", "models.common.EfficientLocalizationAttention"} <= names
    assert "models.common.CoordinateAttention" in names and "models.common.ELA" in names


@pytest.mark.parametrize("pickled", ["EfficientLocalizationAttention", "ELA"])
def test_an_ela_fork_checkpoint_loads(tmp_path, pickled):
    import yaml

    from attnyolo.layers.efficient_local_attention import ELA

    d = yaml.safe_load((FIXTURES / "ca_fork_tiny.yaml").read_text())
    for row in d["backbone"]:
        if row[2] == "CoordAtt":
            row[2] = pickled
    source = _tiny(d)
    path = write_classic_checkpoint(source, tmp_path / "ela.pt", d, classes={ELA: f"models.common.{pickled}"})
    assert f"models.common.{pickled}" in pickle_globals(zip_pickle_record(path))
    loaded = YOLO(str(path)).model.eval()
    assert [m.i for m in loaded.model if isinstance(m, ELA)] == [5, 8, 11]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], source.half().float()(x)[0], atol=1e-4)


@pytest.mark.parametrize(("built", "variant"), [("T", "T"), ("S", "S"), ("B", "B")])
def test_an_ela_fork_checkpoint_loads_the_variant_its_tensors_show(tmp_path, built, variant):
    # The stored YAML writes bare `ELA, [c]` rows (ELA-B today, the form of the widely copied ELA(channel,
    # kernel_size=7)); a fork that built kernel 5 or grouped convs left tensors of that shape, and they decide.
    import yaml

    from attnyolo.layers.efficient_local_attention import ELA

    stored = yaml.safe_load((FIXTURES / "ca_fork_tiny.yaml").read_text())
    d = yaml.safe_load((FIXTURES / "ca_fork_tiny.yaml").read_text())
    for stored_row, row in zip(stored["backbone"], d["backbone"]):
        if row[2] == "CoordAtt":
            stored_row[2], row[2], row[3] = "ELA", "ELA", [*row[3], built]
    d["width_multiple"] = stored["width_multiple"] = 0.25  # 64+ channels: every variant's sizes as in the paper
    source = _tiny(d)
    path = write_classic_checkpoint(source, tmp_path / "ela.pt", stored, classes={ELA: "models.common.ELA"})
    loaded = YOLO(str(path)).model.eval()
    assert [m.variant for m in loaded.model if isinstance(m, ELA)] == [variant] * 3
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], source.half().float()(x)[0], atol=1e-4)


def test_a_classic_file_named_like_a_stock_yolov5_weight_is_read_as_given(tmp_path, monkeypatch):
    # YOLOv5 released its weights as yolov5s.pt; Ultralytics renames such names to its own yolov5su.pt
    monkeypatch.chdir(tmp_path)  # a relative name without "u" in it, as Ultralytics renames only those
    for name in ("yolov5s.pt", "yolov3.pt"):
        (tmp_path / name).write_bytes((FIXTURES / "tiny_ca_fork.pt").read_bytes())
        yolo = YOLO(name)
        assert isinstance(yolo.model.model[-1], YOLOv5Detect) and yolo.names[0] == "cat"

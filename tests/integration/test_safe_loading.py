"""Checkpoints are read without running code from them: what Ultralytics and AttnYOLO write loads, nothing else does.

The files that must load are real: checkpoints attnyolo 0.1 wrote (tests/fixtures/legacy), and models saved here by
Ultralytics' own ``YOLO.save``. Malicious files are pickles that would create a marker file if any code ran.
"""

import io
import pickle
import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.nn import tasks

import attnyolo
from attnyolo.engine import importing
from attnyolo.integration import checkpoints, version
from attnyolo.integration.checkpoints import (
    TRUST_ENV,
    allowed_global,
    checkpoint_label,
    formats,
    read_checkpoint,
    screen,
)
from attnyolo.yolox import registration as yolox_registration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def pickle_globals(path) -> set[str]:
    """Every global a zip checkpoint's pickle names, read with pickletools (torch's own scan hides allowed ones)."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    return {
        arg.replace("__builtin__ ", "builtins ").replace(" ", ".")
        for op, arg, _ in pickletools.genops(data)
        if op.name == "GLOBAL"
    }


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    # setenv, not delenv: monkeypatch then also removes the value a tool under test sets for trust_checkpoint=True.
    monkeypatch.setenv(TRUST_ENV, "0")


@pytest.mark.parametrize("name", ["legacy_attention_v0.pt", "legacy_yolox_v0.pt"])
def test_checkpoints_attnyolo_0_1_wrote_load_without_opting_in(name):
    # legacy_yolox_v0.pt pickles a bound method through builtins.getattr; the restricted getattr must serve it.
    names = pickle_globals(FIXTURES / name)
    assert any(n.startswith("attnyolo.") and n.count(".") == 2 for n in names)  # 0.1's flat paths
    assert ("builtins.getattr" in names) == ("yolox" in name)
    model = YOLO(FIXTURES / name).model
    # The same file unpickled in full (the 0.1 behaviour): identical layers and weights. (Outputs against the 0.1
    # fixtures are compared in a fresh process by test_legacy_checkpoints.py.)
    full = read_checkpoint(FIXTURES / name, trust=True)["model"]
    assert [type(m) for m in model.modules()] == [type(m) for m in full.modules()]
    reference = full.float().state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


STOCK_CFG = {  # stock Ultralytics layers only
    "nc": 2,
    "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "C2f", [16, True]], [-1, 1, "SPPF", [16, 5]]],
    "head": [[[2], 1, "Detect", ["nc"]]],
}


@pytest.mark.parametrize("cfg", ["stock", "layers", "yolox"])
def test_ultralytics_and_attnyolo_saves_load_without_opting_in(cfg, tmp_path):
    # Ultralytics' own writer (YOLO.save) on stock layers, on every AttnYOLO layer, and on a depthwise YOLOX.
    d = {"stock": STOCK_CFG, "layers": version._LAYERS_CFG, "yolox": yolox_registration._YOLOX_CFG}[cfg]
    (tmp_path / f"tiny-{cfg}.yaml").write_text(yaml.safe_dump(d))
    source = YOLO(tmp_path / f"tiny-{cfg}.yaml")
    source.save(tmp_path / "saved.pt")
    loaded = YOLO(tmp_path / "saved.pt").model
    assert [type(m) for m in loaded.modules()] == [type(m) for m in source.model.modules()]
    state = {k: v.half().float() if v.is_floating_point() else v for k, v in source.model.state_dict().items()}
    assert all(torch.equal(state[k], v.float() if v.is_floating_point() else v) for k, v in loaded.state_dict().items())


def test_yolox_depthwise_checkpoints_no_longer_pickle_the_replaced_convs(tmp_path):
    # Depthwise YOLOX rows copied the dense conv's bound `type` method, so checkpoints carried every replaced conv.
    torch.save({"model": tasks.DetectionModel(dict(yolox_registration._YOLOX_CFG))}, tmp_path / "nano.pt")
    assert "attnyolo.yolox.blocks.DWSepConv" in pickle_globals(tmp_path / "nano.pt")
    assert "builtins.getattr" not in pickle_globals(tmp_path / "nano.pt")


def test_training_state_of_a_resumable_checkpoint_loads(tmp_path):
    # What BaseTrainer.save_model adds to the model: its arguments as IterableSimpleNamespace, numpy fitness values,
    # optimizer state, paths (Ultralytics < 8.1 stored save_dir as a Path).
    from ultralytics.utils import IterableSimpleNamespace

    model = tasks.DetectionModel(dict(version._LAYERS_CFG), verbose=False)
    model.args = IterableSimpleNamespace(imgsz=64, data="data.yaml")
    optimizer = torch.optim.AdamW(model.parameters())
    ckpt = {
        "epoch": 3,
        "best_fitness": np.float64(0.25),
        "ema": model,
        "model": None,
        "optimizer": optimizer.state_dict(),
        "train_args": {"save_dir": Path("runs/train/exp"), "imgsz": 64},
    }
    torch.save(ckpt, tmp_path / "last.pt")
    loaded = read_checkpoint(tmp_path / "last.pt")
    assert loaded["epoch"] == 3 and loaded["best_fitness"] == 0.25
    assert loaded["train_args"]["save_dir"] == Path("runs/train/exp")
    assert loaded["ema"].args.imgsz == 64


@pytest.mark.parametrize(("how", "named"), [("os.system", "posix.system"), ("exec", "builtins.exec")])
def test_malicious_pickle_runs_nothing_through_yolo(malicious_checkpoint, how, named):
    path, marker = malicious_checkpoint(how)
    with pytest.raises(attnyolo.CheckpointError) as error:
        YOLO(path)
    assert not marker.exists()
    message = str(error.value)
    assert message == (
        f"{path}: refused to load: it references {named}, which checkpoints written by Ultralytics or AttnYOLO never "
        "contain. If you trust this file, pass trust_checkpoint=True (or set ATTNYOLO_TRUST_CHECKPOINTS=1)."
    )


def test_malicious_pickle_in_torchs_legacy_format_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(tmp_path / 'ran')!r}, 'w').write('x')",)

    path = tmp_path / "old-format.pt"
    torch.save({"x": Payload()}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(attnyolo.CheckpointError, match=r"refused to load: it references builtins\.exec"):
        read_checkpoint(path)
    assert not (tmp_path / "ran").exists()
    torch.save({"w": torch.ones(2)}, tmp_path / "tensors.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(tmp_path / "tensors.pt")["w"], torch.ones(2))


def _pickle_in_checkpoint(tmp_path, data_pkl: bytes) -> Path:
    """A torch zip checkpoint whose data.pkl is ``data_pkl`` (hand-written opcodes)."""
    buffer = io.BytesIO()
    torch.save({}, buffer)
    src = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path, "w") as out:
        for item in src.infolist():
            out.writestr(item, data_pkl if item.filename.endswith("data.pkl") else src.read(item))
    return path


@pytest.mark.parametrize(
    ("obj", "name", "allowed"),
    [
        (torch.nn.Conv2d(1, 1, 1), "forward", True),
        (torch.nn.Conv2d(1, 1, 1), "type", True),  # attnyolo <= 0.2 YOLOX checkpoints
        (tasks.Detect, "forward", True),
        (torch.nn.Conv2d(1, 1, 1), "__init__", False),
        (torch.nn.Conv2d(1, 1, 1), "register_forward_hook", False),
        (tasks.DetectionModel, "predict", False),  # predict(visualize=dir) writes files
        (tasks.DetectionModel, "__init__", False),
        (torch, "load", False),
        ("text", "format", False),
    ],
)
def test_the_checkpoint_getattr_serves_only_what_checkpoints_use(obj, name, allowed):
    from attnyolo.integration.checkpoints import _checkpoint_getattr

    if allowed:
        assert _checkpoint_getattr(obj, name) == getattr(obj, name)
    else:
        with pytest.raises(pickle.UnpicklingError):
            _checkpoint_getattr(obj, name)


def test_the_allowed_getattr_cannot_reach_globals(tmp_path):
    # getattr(<allowed layer class>, "__init__") -> getattr(function, "__globals__") would reach os; refused.
    crafted = (
        b"\x80\x02c__builtin__\ngetattr\nq\x00h\x00ctorch.nn.modules.linear\nIdentity\nX\x08\x00\x00\x00__init__"
        b"\x86R"  # getattr(Identity, "__init__")
        b"X\x0b\x00\x00\x00__globals__\x86R."
    )
    path = _pickle_in_checkpoint(tmp_path, crafted)
    with pytest.raises(attnyolo.CheckpointError, match=r"refused to load: .*getattr\(type, '__init__'\)"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("torch.nn.modules.conv.Conv2d", torch.nn.Conv2d),
        ("ultralytics.nn.tasks.DetectionModel", tasks.DetectionModel),
        ("ultralytics.nn.tasks.YOLOv10DetectionModel", tasks.DetectionModel),  # renamed by Ultralytics
        ("attnyolo.layers.coord_attention.CoordAtt", attnyolo.CoordAtt),
        ("attnyolo.coord_attention.CoordAtt", attnyolo.CoordAtt),  # attnyolo 0.1's path
        ("ultralytics.yolo.utils.IterableSimpleNamespace", None),  # checked below: the renamed module's class
        ("os.system", None),
        ("posix.system", None),
        ("builtins.eval", None),
        ("ultralytics.nn.tasks.torch_safe_load", None),  # a function in an allowed module is not a layer class
        ("ultralytics.nn.tasks.yaml_model_load", None),
        ("ultralytics.nn.modules.nonexistent.Layer", None),
        ("torch.hub.load", None),
        ("attnyolo.integration.checkpoints.read_checkpoint", None),
    ],
)
def test_allowlist_is_layer_classes_and_checkpoint_data_only(name, expected):
    got = allowed_global(name)
    if name.startswith("ultralytics.yolo.utils"):
        from ultralytics.utils import IterableSimpleNamespace

        assert got is IterableSimpleNamespace
    else:
        assert got is expected


def test_refusal_names_the_argument_the_user_typed(malicious_checkpoint):
    path, marker = malicious_checkpoint()
    with pytest.raises(attnyolo.CheckpointError, match=rf"^model={path}: refused to load: it references posix\.system"):
        checkpoints.load_model(path)
    with checkpoint_label(f"pretrained={path}"), pytest.raises(attnyolo.CheckpointError, match="^pretrained="):
        tasks.load_checkpoint(path)
    assert not marker.exists()


def test_opting_in_reads_with_full_unpickling(malicious_checkpoint, monkeypatch):
    path, marker = malicious_checkpoint("exec")
    assert read_checkpoint(path, trust=True)["epoch"] == -1
    assert marker.read_text() == "ran"  # trusting means running the file's code: that is what the opt-in is for
    marker.unlink()
    monkeypatch.setenv(TRUST_ENV, "1")
    assert YOLO(path).task == "detect"
    assert marker.exists()


def test_damaged_files_are_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": tasks.DetectionModel(dict(version._LAYERS_CFG), verbose=False)}, good)
    cases = {
        "empty.pt": b"",
        "image.pt": b"\xff\xd8\xff\xe0 a jpeg renamed",
        "truncated.pt": good.read_bytes()[: good.stat().st_size // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(attnyolo.CheckpointError) as error:
            YOLO(tmp_path / name)
        assert "is not a loadable checkpoint" in str(error.value) and "\n" not in str(error.value), name
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "script.pt")
    with pytest.raises(attnyolo.CheckpointError, match="is a TorchScript archive"):
        YOLO(tmp_path / "script.pt")


def test_a_foreign_format_is_asked_before_refusing(malicious_checkpoint, monkeypatch):
    # A format a family registers (attnyolo.integration.plugins, e.g. classic YOLOv5) reads its files without
    # unpickling code.
    path, marker = malicious_checkpoint()
    model = tasks.DetectionModel(dict(version._LAYERS_CFG), verbose=False)
    fmt = importing.ForeignFormat(
        "test-format", "a test", detect=lambda p: Path(p) == path, load=lambda p, **_: ({"model": model}, {})
    )
    monkeypatch.setattr(formats, "formats", lambda: [fmt])
    assert YOLO(path).model is model
    assert not marker.exists()
    monkeypatch.setenv(TRUST_ENV, "1")  # trusting files does not hand a foreign format to Ultralytics' unpickler
    assert YOLO(path).model is model
    assert not marker.exists()


def test_the_loader_wrap_is_installed_and_named():
    from attnyolo.integration import internals

    assert hasattr(tasks.torch_safe_load, "_attnyolo_original")
    assert any(p.attribute == "torch_safe_load" for p in internals.PATCHES)


@pytest.mark.slow
def test_a_fresh_process_refuses_after_import_attnyolo(malicious_checkpoint, tmp_path):
    path, marker = malicious_checkpoint()
    code = f"import attnyolo\nfrom ultralytics import YOLO\nYOLO({str(path)!r})\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "refused to load: it references posix.system" in out.stderr
    assert not marker.exists()
    # With attnyolo imported, its own checkpoints load through the allowlist in a fresh process too.
    good = tmp_path / "good.pt"
    YOLO("yolov8n-ELA-S.yaml").save(good)
    code = f"import attnyolo\nfrom ultralytics import YOLO\nprint(type(YOLO({str(good)!r}).model.model[5]).__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ELA"), out.stderr[-2000:]


def test_no_module_of_the_package_unpickles_in_full():
    # Every checkpoint goes through read_checkpoint: no torch.load(weights_only=False) elsewhere in the package.
    root = Path(attnyolo.__file__).parent
    reader = root / "integration" / "checkpoints" / "reading.py"  # read_checkpoint's module
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "weights_only=False" in p.read_text(encoding="utf-8") and p != reader
    ]
    assert offenders == []


def test_a_protocol_3_file_in_torchs_older_format_loads_without_torchs_protocol_warning(tmp_path):
    import warnings

    # Only tensors and dicts: nothing is refused, so torch.load runs, and it warns about any protocol but 2 unless
    # load_weights_only filters the warning out. Protocol 3, as protocol 4's FRAME opcode is one torch's weights-only
    # unpickler does not read at all.
    path = tmp_path / "old.pt"
    torch.save({"x": torch.ones(2)}, path, _use_new_zipfile_serialization=False, pickle_protocol=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert torch.equal(read_checkpoint(path)["x"], torch.ones(2))
    assert not [w for w in caught if "Detected pickle protocol" in str(w.message)]


def test_an_oversized_file_in_torchs_older_format_is_named_too_large_not_damaged(tmp_path):
    from attnyolo.integration.checkpoints.pickles import MAX_PICKLE_BYTES

    # One string longer than any checkpoint's whole pickle: the scan stops at the limit, where the data is cut off.
    path = tmp_path / "huge.pt"
    torch.save({"notes": "x" * (MAX_PICKLE_BYTES + 1024)}, path, _use_new_zipfile_serialization=False)
    why = importing.describe_unreadable(path)
    assert why and "larger than any checkpoint's pickle" in why and "truncated" not in why, why
    with pytest.raises(attnyolo.CheckpointError, match=r"source=.*could not be read as a checkpoint: its pickles run "):
        importing.import_weights(path, tmp_path / "out.pt")
    with pytest.raises(attnyolo.CheckpointError, match="its pickles run past"):  # every reader says the same
        read_checkpoint(path)


class _FakeFormat:
    """A foreign format whose conversion must not run to tell whether a file is in it."""

    name = "fake"

    def load(self, path, **kwargs):
        raise AssertionError("converted the file only to detect its format")


def test_screening_detects_a_foreign_format_without_converting_the_file(tmp_path, monkeypatch):
    import fractions

    path = tmp_path / "foreign.pt"
    torch.save({"x": fractions.Fraction(1, 2)}, path)  # a global no checkpoint of ours holds
    monkeypatch.setattr(screen, "detect_format", lambda p: _FakeFormat())
    checkpoints.screen_checkpoint(path)  # a foreign format's reader answers when loading: not refused here


def test_screening_takes_the_callers_word_that_a_file_is_not_foreign(tmp_path, monkeypatch):
    import fractions

    path = tmp_path / "plain.pt"
    torch.save({"x": fractions.Fraction(1, 2)}, path)
    monkeypatch.setattr(screen, "detect_format", lambda p: pytest.fail("detected a format the caller knew"))
    with pytest.raises(attnyolo.CheckpointError, match=r"references fractions\.Fraction.*trust_checkpoint=True"):
        checkpoints.screen_checkpoint(path, foreign=False)

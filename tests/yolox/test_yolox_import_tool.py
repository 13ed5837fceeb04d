"""attnyolo import_weights on official YOLOX checkpoints: what it reports, and one clear line for files it cannot map.

The slow tests run the tools as a user does, in fresh processes: import, then val / predict / export on the result,
and training an attention variant from the official .pth.
"""

import json
import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from official_helpers import official_state_dict
from torch import nn
from ultralytics import YOLO

from attnyolo.commands import run
from attnyolo.engine import importing
from attnyolo.integration import plugins
from attnyolo.yolox import official, official_weights


def import_tool(capsys, *args):
    """Run ``attnyolo import_weights`` in-process; return (exit status, stdout, stderr)."""
    try:
        status = run("import_weights", [str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    out = capsys.readouterr()
    return status, out.out, out.err


def report_of(stdout):
    return dict(line.split(": ", 1) for line in stdout.strip().splitlines())


def test_official_checkpoint_converts_with_a_report(official_checkpoint, tmp_path, capsys):
    out = tmp_path / "yolox-nano.pt"
    status, stdout, _ = import_tool(capsys, f"source={official_checkpoint('nano')}", f"out={out}")
    assert status == 0
    report = report_of(stdout)
    assert report["format"] == "yolox-official"
    assert report["size"] == "YOLOX-Nano (depth 0.33, width 0.25, depthwise) (inferred from the tensor shapes)"
    assert report["tensors"] == "642/642 official tensors mapped by module structure"
    assert report["classes"] == "80 (COCO names)" and report["imgsz"] == "416"
    assert report["ignored"] == "checkpoint entries besides 'model': best_ap, curr_ap, optimizer, start_epoch"
    assert "initialised" not in report
    assert YOLO(str(out)).model.names[0] == "person"


def test_a_bare_state_dict_converts_to_the_same_weights(converted_checkpoint, tmp_path, capsys):
    bare = tmp_path / "bare.pth"
    torch.save(official_state_dict("nano"), bare)  # what tools/export_onnx.py and torch.hub also accept
    assert import_tool(capsys, f"source={bare}", f"out={tmp_path / 'bare.pt'}")[0] == 0
    a = YOLO(str(tmp_path / "bare.pt")).model.state_dict()
    b = YOLO(str(converted_checkpoint("nano"))).model.state_dict()  # from {"model": ..., "optimizer": ..., ...}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_attention_variant_and_other_class_count_are_reported(official_checkpoint, tmp_path, capsys):
    out = tmp_path / "ela.pt"
    status, stdout, _ = import_tool(
        capsys, f"source={official_checkpoint('nano')}", f"out={out}", "model=yolox-nano-ELA-S.yaml", "nc=3"
    )
    assert status == 0
    report = report_of(stdout)
    assert report["initialised"] == "attention rows 5, 8, 12, 16, 21, 25 and 29 keep their initialisation"
    assert report["classes"].startswith("3 (names class0..); class branch (head.cls_preds.0-2, 6 tensors)")
    assert report["tensors"] == "636/642 official tensors mapped by module structure"
    yolo = YOLO(str(out))
    assert yolo.model.nc == 3 and type(yolo.model.model[5]).__name__ == "ELA"
    assert yolo.model.names == {0: "class0", 1: "class1", 2: "class2"}


def classic_yolov5_checkpoint(path, monkeypatch):
    """A faithful reproduction of a classic ultralytics/yolov5 ``best.pt``: its train.py's dict with the model pickled
    as ``models.yolo.DetectionModel`` (whose module only exists in that repository). Unpickling it would run that
    repository's code; ``calls`` records whether anything tried."""
    calls = []

    class DetectionModel(nn.Module):
        def __setstate__(self, state):
            calls.append("unpickled")
            super().__setstate__(state)

    yolo_module = types.ModuleType("models.yolo")
    DetectionModel.__module__, DetectionModel.__qualname__ = "models.yolo", "DetectionModel"
    yolo_module.DetectionModel = DetectionModel
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.yolo", yolo_module)
    model = DetectionModel()
    model.model = nn.Sequential(nn.Conv2d(3, 16, 6, 2, 2, bias=False), nn.BatchNorm2d(16))
    model.yaml = {"nc": 80, "depth_multiple": 0.33, "width_multiple": 0.5}
    model.half()
    ckpt = {"epoch": -1, "best_fitness": None, "model": model, "ema": None, "updates": None, "optimizer": None}
    torch.save({**ckpt, "opt": {"imgsz": 640}, "git": None, "date": "2023-01-01T00:00:00"}, path)
    return calls


def bad_inputs(tmp_path, official_checkpoint, monkeypatch):
    """(arguments, what the one-line message must say) for files and settings the YOLOX import cannot map."""
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps(official_state_dict("nano")))  # pickle.dump, not torch.save
    truncated = tmp_path / "yolox_s_partial.pth"
    truncated.write_bytes(official_checkpoint("nano").read_bytes()[:100_000])
    classic = tmp_path / "yolov5s.pt"
    calls = classic_yolov5_checkpoint(classic, monkeypatch)
    nano = official_checkpoint("nano")
    cases = {
        "text": ([f"source={text}"], "it is a text file"),
        "plain pickle": ([f"source={plain}"], "it is a pickle, but not one torch.save wrote"),
        "truncated": ([f"source={truncated}"], "truncated or damaged zip archive"),
        # Without the classic format registered, its classes are globals no checkpoint of ours holds: refused.
        "classic yolov5": (
            [f"source={classic}"],
            r"source=.*yolov5s.pt: refused to load: it references models\.yolo\..* If you trust this file, pass "
            r"trust_checkpoint=True",
        ),
        "other size": (
            [f"source={nano}", "model=yolox-s.yaml"],
            r"has 360 tensor\(s\) model=yolox-s.yaml has no place for, e.g. backbone.backbone.dark2.0.dconv.conv.weight"
            r", .* The file is YOLOX-Nano \(depth 0.33, width 0.25, depthwise\), inferred from its shapes",
        ),
        "other width": (
            [f"source={official_checkpoint('tiny')}", "model=yolox-s.yaml"],
            r"backbone.backbone.stem.conv.conv.weight has shape \(24, 12, 3, 3\), but model=yolox-s.yaml needs "
            r"\(32, 12, 3, 3\) for model.0.conv.conv.weight",
        ),
        "not yolox": ([f"source={nano}", "model=yolov8n.yaml"], "model=yolov8n.yaml is not a YOLOX model"),
        "bad nc": ([f"source={nano}", "nc=0"], "nc=0 must be a positive whole number"),
    }
    return cases, calls


@pytest.mark.parametrize(
    "case", ["text", "plain pickle", "truncated", "classic yolov5", "other size", "other width", "not yolox", "bad nc"]
)
def test_what_cannot_be_imported_gets_one_line_and_nothing_is_written(
    case, official_checkpoint, tmp_path, monkeypatch, capsys
):
    # Only the YOLOX format is registered here, whatever other formats the project adds.
    monkeypatch.setattr(plugins, "FORMATS", {"yolox-official": plugins.FORMATS["yolox-official"]})
    cases, calls = bad_inputs(tmp_path, official_checkpoint, monkeypatch)
    args, message = cases[case]
    out = tmp_path / "out" / "converted.pt"
    status, stdout, stderr = import_tool(capsys, *args, f"out={out}")
    assert status == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists() and not list(tmp_path.glob("out/.*"))  # no file, no temporary left behind
    assert calls == []  # nothing in the classic checkpoint was unpickled


def test_detection_reads_only_tensors(official_checkpoint, tmp_path, monkeypatch):
    classic = tmp_path / "yolov5s.pt"
    calls = classic_yolov5_checkpoint(classic, monkeypatch)
    assert official.detect(official_checkpoint("nano")) and not official.detect(classic)
    with pytest.raises(importing.CheckpointError, match="is not an official YOLOX checkpoint"):
        official.read_official(classic)
    assert calls == []


def test_a_trainer_checkpoint_holding_more_than_numbers_is_refused_by_name(tmp_path, capsys):
    # YOLOX's trainer saves its APs as numpy scalars (read: see official_checkpoint); an array is another global
    path = tmp_path / "yolox_nano_ckpt.pth"
    torch.save({"start_epoch": 1, "model": official_state_dict("nano"), "best_ap": np.array([40.5])}, path)
    out = tmp_path / "converted.pt"
    status, _, stderr = import_tool(capsys, f"source={path}", f"out={out}")
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1 and not out.exists()
    # the words every reader refuses in: the global, and both ways to opt in
    assert re.search(
        r"source=.*: refused to load: it references numpy\._?core\.multiarray\._reconstruct .*If you trust this "
        r"file, pass trust_checkpoint=True \(or set ATTNYOLO_TRUST_CHECKPOINTS=1\)\.$",
        lines[0],
    ), lines[0]


@pytest.mark.parametrize("opt_in", ["argument", "environment"])
def test_a_trainer_checkpoint_holding_more_than_numbers_converts_with_the_opt_in(opt_in, tmp_path, capsys, monkeypatch):
    path = tmp_path / "yolox_nano_ckpt.pth"
    torch.save({"start_epoch": 1, "model": official_state_dict("nano"), "best_ap": np.array([40.5])}, path)
    out = tmp_path / "converted.pt"
    monkeypatch.setenv("ATTNYOLO_TRUST_CHECKPOINTS", "1" if opt_in == "environment" else "0")  # restored after
    extra = ["trust_checkpoint=True"] if opt_in == "argument" else []
    status, stdout, stderr = import_tool(capsys, f"source={path}", f"out={out}", *extra)
    assert status == 0, stderr
    assert report_of(stdout)["tensors"] == "642/642 official tensors mapped by module structure"


def test_conversion_asks_whether_the_pickle_names_yoloxs_keys_once(official_checkpoint, tmp_path, monkeypatch):
    calls = []
    original = official.names_official_keys
    monkeypatch.setattr(official, "names_official_keys", lambda path: calls.append(path) or original(path))
    source = official_checkpoint("nano")
    official._cache.clear()
    importing.import_weights(source, tmp_path / "converted.pt")  # detect() then read_official(): one read, kept
    assert len(calls) == 1


def test_torchs_older_file_format_converts(tmp_path, capsys):
    path = tmp_path / "yolox_nano.pth"
    ckpt = {"model": official_state_dict("nano"), "best_ap": np.float64(25.8)}
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)  # what torch < 1.6 wrote
    assert path.read_bytes()[:1] == b"\x80"  # a pickle, not a zip archive
    status, stdout, _ = import_tool(capsys, f"source={path}", f"out={tmp_path / 'converted.pt'}")
    assert status == 0 and report_of(stdout)["tensors"] == "642/642 official tensors mapped by module structure"


@pytest.mark.parametrize(
    "cut, message",
    [
        # before the pickle names the class branch: not recognisably YOLOX, but recognisably cut short
        ("before the class key", r"could not be read as a checkpoint: it is a truncated or damaged file in torch's "),
        ("after the class key", r"names official YOLOX tensors but could not be read: it is a truncated or damaged "),
        # the storages its pickle declares no longer fit in the file: refused before torch allocates them
        (
            "in the tensor bytes",
            r"names official YOLOX tensors but could not be read: it is a truncated or damaged "
            r"file in torch's pre-1.6 format: its pickle declares [\d,]+ bytes of tensor storage, more than the whole",
        ),
    ],
)
def test_a_truncated_file_in_torchs_older_format_says_it_could_not_be_read(cut, message, tmp_path, capsys):
    whole = tmp_path / "yolox_nano.pth"
    torch.save({"model": official_state_dict("nano")}, whole, _use_new_zipfile_serialization=False)
    data = whole.read_bytes()
    at = data.index(official_weights.CLASS_KEY.encode())
    end = {"before the class key": at - 100, "after the class key": at + 200, "in the tensor bytes": len(data) // 2}
    truncated = tmp_path / "partial.pth"
    truncated.write_bytes(data[: end[cut]])
    out = tmp_path / "converted.pt"
    status, _, stderr = import_tool(capsys, f"source={truncated}", f"out={out}")
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1 and not out.exists()
    assert re.search(message, lines[0]), lines[0]


@pytest.mark.parametrize("nc", [None, 20])
def test_a_class_tensor_with_other_rows_is_an_error_not_another_class_count(nc, tmp_path, capsys):
    state = official_state_dict("nano")
    state["head.cls_preds.1.weight"] = state["head.cls_preds.1.weight"][:20].clone()  # one damaged tensor of 80 rows
    path = tmp_path / "damaged.pth"
    torch.save({"model": state}, path)
    out = tmp_path / "converted.pt"
    status, _, stderr = import_tool(capsys, f"source={path}", f"out={out}", *([f"nc={nc}"] if nc else []))
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1 and not out.exists()
    expected = "head.cls_preds.1.weight has shape (20, 64, 1, 1), but head.cls_preds.0.weight has 80 classes"
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(
    "value, message",
    [
        ("True", r"legacy=True: YOLOX's legacy weights expect RGB/255 input normalised per channel with ImageNet's"
         r" mean and std, .* zero padding .* Fix: use the current weights, YOLOX release 0\.1\.1rc0"),
        ("maybe", r"legacy=maybe is not true or false\. Fix: give legacy=True or legacy=False"),
    ],
)  # fmt: skip
def test_legacy_yolox_weights_are_refused_with_the_reason(value, message, official_checkpoint, tmp_path, capsys):
    out = tmp_path / "converted.pt"
    status, _, stderr = import_tool(capsys, f"source={official_checkpoint('nano')}", f"out={out}", f"legacy={value}")
    lines = stderr.strip().splitlines()
    assert status == (2 if value == "maybe" else 1) and len(lines) == 1 and not out.exists()  # 2: a usage error
    assert re.search(message, lines[0]), lines[0]


def test_a_classic_yolov5_file_imports_and_a_yolox_model_for_it_is_named_as_the_problem(tmp_path, capsys):
    # every format the project registers (the tests above register YOLOX's alone)
    classic = Path(__file__).resolve().parents[1] / "fixtures" / "yolov5" / "tiny_official_stripped.pt"
    status, stdout, _ = import_tool(capsys, f"source={classic}", f"out={tmp_path / 'v5.pt'}")
    assert status == 0 and report_of(stdout)["format"] == "yolov5-classic"
    out = tmp_path / "converted.pt"
    status, _, stderr = import_tool(capsys, f"source={classic}", f"out={out}", "model=yolox-s.yaml")
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1 and not out.exists()
    assert "is a classic YOLOv5 checkpoint, but model=yolox-s.yaml names a YOLOX model" in lines[0], lines[0]
    assert "Fix: leave model= out" in lines[0] and "classic YOLOv5 YAML" in lines[0]


# ------------------------------------------------------------------------------------------------ end to end (slow)
@pytest.mark.slow
def test_tools_run_on_a_converted_checkpoint(official_checkpoint, tmp_path, tool, run_command):
    # The conversion runs as a user runs it, in a fresh interpreter; the tools on its output run in this process
    # (each tool has its own fresh-interpreter tests), which saves about ten seconds of interpreter start-ups.
    from attnyolo.data.sample import make_sample_dataset

    data = make_sample_dataset(tmp_path / "data", n_train=4, n_val=4, imgsz=96, video=False)
    out = tmp_path / "yolox-nano.pt"
    r = tool("import_weights", f"source={official_checkpoint('nano')}", f"out={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "tensors: 642/642 official tensors mapped by module structure" in r.stdout

    truncated = tmp_path / "partial.pth"
    truncated.write_bytes(official_checkpoint("nano").read_bytes()[:50_000])
    r = run_command("import_weights", f"source={truncated}", f"out={tmp_path / 'never.pt'}", cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "never.pt").exists()

    small = ["imgsz=96", "batch=4", "workers=0", "device=cpu"]
    r = run_command("val", f"model={out}", f"data={data}", *small, f"project={tmp_path / 'val'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "val" / "exp" / "metrics.json").read_text())
    assert metrics["images"] == 4  # COCO names on a 3-class dataset: scored, if poorly

    image = next((data.parent / "images" / "val").glob("*.jpg"))
    r = run_command(
        "predict", f"model={out}", f"source={image}", "imgsz=96", "conf=0.01", f"project={tmp_path / 'p'}", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 image(s)/frame(s)" in r.stdout

    r = run_command("export", f"model={out}", "format=onnx", "imgsz=96", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "yolox-nano.onnx").is_file()


@pytest.mark.slow
def test_train_from_the_official_pth_transfers_all_but_attention_and_class_branch(official_checkpoint, tmp_path, tool):
    from attnyolo.data.sample import make_sample_dataset

    data = make_sample_dataset(tmp_path / "data", n_train=8, n_val=4, imgsz=96, video=False)
    runs = tmp_path / "runs"
    r = tool(
        "train", "model=yolox-nano-ELA-S.yaml", f"data={data}", f"pretrained={official_checkpoint('nano')}",
        "epochs=1", "imgsz=64", "batch=4", "workers=0", "device=cpu", "plots=False", "evaluate=False",
        f"project={runs}", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("pretrained "))
    # 663 tensors: 642 official ones, of which the 6 of the 80-class branch do not fit 3 classes, and 21 of ELA rows
    assert "transferred 636/663 tensors, skipped 27" in line
    assert (
        "no matching source row: model.5, model.8, model.12, model.16, model.21, model.25, model.29 (21 tensors)"
        in line
    )
    assert "other shapes: model.31 (6 tensors, e.g. cls_preds.0.weight (80, 64, 1, 1) vs (3, 64, 1, 1))" in line
    assert (runs / "imported" / "yolox_nano.pt").is_file()  # the converted starting point stays with the runs


@pytest.mark.slow
def test_recipe_yolox_trains_with_yoloxs_learning_rate(tmp_path):
    from attnyolo.data.sample import make_sample_dataset
    from attnyolo.engine.trainer import train
    from attnyolo.yolox.recipe import yolox_lr

    data = make_sample_dataset(tmp_path / "data", n_train=16, n_val=4, imgsz=96, video=False)
    _, run_dir, _ = train(
        "yolox-nano.yaml", data=str(data), recipe="yolox", epochs=3, batch=4, imgsz=64, workers=0, plots=False,
        evaluate=False, device="cpu", project=str(tmp_path / "runs"),
    )  # fmt: skip
    assert json.loads((run_dir / "recipe.json").read_text()) == {"recipe": "yolox"}
    rows = [ln.split(",") for ln in (run_dir / "results.csv").read_text().splitlines()]
    lr = [float(r[rows[0].index("lr/pg0")]) for r in rows[1:]]
    # 16 images / batch 4 = 4 iterations per epoch; Ultralytics logs the lr of each epoch's last iteration
    assert lr == pytest.approx([yolox_lr(4 * e + 3, 0.01 * 4 / 64, 4, 3) for e in range(3)], rel=1e-5)  # CSV: 6 digits

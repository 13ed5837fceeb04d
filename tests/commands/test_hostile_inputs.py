"""Hostile but realistic inputs to the tools: a stranger's checkpoint or dataset must run nothing and write nothing
outside the folder the user named; a failure is one line naming the file.

The malicious checkpoint (tests/conftest.py) runs ``os.system("touch <marker>")`` when unpickled; the marker file is
the proof that code ran.
"""

import json
import os

import pytest
import torch

from attnyolo.commands import run
from attnyolo.data.sample import make_sample_dataset
from attnyolo.integration.checkpoints import TRUST_ENV, checkpoints_trusted
from attnyolo.utils.cli import failure_message, parse_bool, parse_kv_args


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    # setenv, not delenv: monkeypatch then also removes the value a tool under test sets for trust_checkpoint=True.
    monkeypatch.setenv(TRUST_ENV, "0")


def error_lines(capsys) -> list[str]:
    """The ``error:`` lines a tool printed to stderr (there must be exactly one), after checking for a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    return [line for line in err.splitlines() if line.startswith("error: ")]


# ------------------------------------------------------------------------------------------------ 1. boolean keys
@pytest.mark.parametrize("value", ["no", "off", "NO", "Off", "0", "false", "False"])
def test_a_false_spelling_of_trust_keeps_the_file_untrusted(value, malicious_checkpoint, sample_data, capsys):
    evil, marker = malicious_checkpoint()
    with pytest.raises(SystemExit) as done:
        run("val", [f"model={evil}", f"data={sample_data}", f"trust_checkpoint={value}", "project=/nonexistent/x"])
    errors = error_lines(capsys)
    assert done.value.code == 1 and len(errors) == 1 and "refused to load: it references posix.system" in errors[0]
    assert not marker.exists(), value


@pytest.mark.parametrize("value", ["maybe", "2", "nope", "", "tru"])
def test_a_value_that_is_no_boolean_is_refused_naming_key_and_value(value, malicious_checkpoint, capsys):
    evil, marker = malicious_checkpoint()
    with pytest.raises(SystemExit) as done:
        run("model_info", [f"model={evil}", f"trust_checkpoint={value}"])
    errors = error_lines(capsys)
    assert done.value.code == 2 and errors == [
        f"error: trust_checkpoint={value} is not true or false. Fix: give trust_checkpoint=True or "
        "trust_checkpoint=False (also 1/0, yes/no, on/off)."
    ]
    assert not marker.exists()


@pytest.mark.parametrize("value", ["yes", "ON", "1", "TRUE"])
def test_every_true_spelling_opts_in(value, malicious_checkpoint, capsys, monkeypatch):
    evil, marker = malicious_checkpoint()
    run("model_info", [f"model={evil}", f"trust_checkpoint={value}"])
    assert marker.exists() and "parameters" in capsys.readouterr().out


@pytest.mark.parametrize(("value", "expected"), [("no", False), ("off", False), ("yes", True), ("junk", False)])
def test_the_environment_switch_uses_the_same_spellings(value, expected, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, value)
    assert checkpoints_trusted() is expected


def test_every_boolean_key_is_parsed_the_same_way():
    from ultralytics.cfg import DEFAULT_CFG_DICT

    args = parse_kv_args(
        ["save_json=off", "exist_ok=YES", "plots=0", "resume=no", "pretrained=weights/a.pt", "cache=ram"],
        {"exist_ok": False, "resume": False, "pretrained": None},
        "usage",
        passthrough=set(DEFAULT_CFG_DICT),
    )
    assert args["save_json"] is False and args["exist_ok"] is True and args["plots"] is False
    assert args["resume"] is False and args["pretrained"] == "weights/a.pt" and args["cache"] == "ram"
    with pytest.raises(SystemExit):
        parse_kv_args(["save_json=perhaps"], {}, "usage", passthrough=set(DEFAULT_CFG_DICT))
    assert [parse_bool(v) for v in ("On", " yes ", "0", "x")] == [True, True, False, None]


# ----------------------------------------------------------------- 6. OS errors: one line naming the path, no traceback
def test_val_with_metrics_json_a_folder_is_one_line_naming_it(sample_data, perfect_predictions, tmp_path, capsys):
    (tmp_path / "runs" / "exp" / "metrics.json").mkdir(parents=True)
    argv = [f"data={sample_data}", f"predictions={perfect_predictions}", f"project={tmp_path / 'runs'}", "exist_ok=on"]
    with pytest.raises(SystemExit) as done:
        run("val", argv)
    errors = error_lines(capsys)
    assert done.value.code == 1 and errors == [
        f"error: cannot write {tmp_path / 'runs' / 'exp' / 'metrics.json'}: a folder is in the way of the file "
        "(EISDIR). Fix: move the folder away, or name another file or folder."
    ]


def test_import_weights_out_an_existing_folder_is_one_line(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "imported.pt"
    out.mkdir()
    with pytest.raises(SystemExit) as done:
        run("import_weights", [f"source={tiny_checkpoint}", f"out={out}"])
    errors = error_lines(capsys)
    assert done.value.code == 1 and len(errors) == 1 and errors[0].startswith(f"error: cannot write {out}: a folder ")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            FileExistsError(17, "File exists", "/data/out"),
            "cannot write /data/out: something of that name is in the way",
        ),
        (
            NotADirectoryError(20, "Not a directory", "/data/f/x"),
            "cannot write /data/f/x: a part of the path is a file",
        ),
        (IsADirectoryError(21, "Is a directory", "/data/m.json"), "cannot write /data/m.json: a folder is in the way"),
    ],
)
def test_os_errors_become_one_line_naming_the_path(error, expected):
    message, status = failure_message(error)
    assert status == 1 and message.startswith(expected) and "Fix: " in message


# --------------------------------------------------------------------------- 7. a COCO bbox that is not four numbers
@pytest.mark.parametrize("bbox", ["abc", [1, 2, 3], [1, 2, "x", 4], None])
def test_a_coco_bbox_that_is_not_four_numbers_names_file_and_annotation(bbox, tmp_path, capsys):
    sample = make_sample_dataset(tmp_path / "sample", n_train=1, n_val=1, imgsz=64, video=False).parent
    json_path = sample / "annotations" / "instances_val.json"
    data = json.loads(json_path.read_text())
    data["annotations"][0]["bbox"] = bbox
    json_path.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as done:
        run("convert", [f"source={sample}", f"out={tmp_path / 'out'}"])
    errors = error_lines(capsys)
    ann = data["annotations"][0]["id"]
    assert done.value.code == 1 and errors == [
        f"error: {json_path}: annotation id {ann} has bbox {bbox!r}; COCO boxes are [x, y, width, height], four "
        "numbers. Fix: correct or remove that annotation."
    ]


# ------------------------------------------------------------------ 9. import_weights out= the source file itself
def test_import_weights_into_its_own_source_is_refused_unless_overwrite(tmp_path, capsys):
    source = tmp_path / "best.pt"
    source.write_bytes(b"PK original bytes")  # refused before the file is read: its bytes must stay as they are
    with pytest.raises(SystemExit) as done:
        run("import_weights", [f"source={source}", f"out={source}"])
    errors = error_lines(capsys)
    assert done.value.code == 1 and errors == [
        f"error: out={source} is the source file itself; converting would replace the original, and what it holds "
        "beyond the weights (optimizer state, training options) would be lost. Fix: name another out=, or pass "
        "overwrite=True to replace it."
    ]
    assert source.read_bytes() == b"PK original bytes"
    with pytest.raises(SystemExit) as done:  # with overwrite=True it goes on to read the file (here: not a checkpoint)
        run("import_weights", [f"source={source}", f"out={tmp_path / '.' / 'best.pt'}", "overwrite=yes"])
    assert "is the source file itself" not in capsys.readouterr().err


# -------------------------------------------------------------------------------------- 10. a .pt holding no model
@pytest.mark.parametrize(
    ("content", "what"),
    [
        ({"w": "tensor"}, "it is a state_dict (1 tensors, the weights without the model they belong to)"),
        ({"model": {"w": "tensor"}}, "its 'model' entry is a dict (a state_dict?), not a model"),
        ({"model": None}, "its 'model' entry is None, not a model"),
        ([1, 2], "it holds a list"),
    ],
)
def test_a_checkpoint_holding_no_model_says_so(content, what, tmp_path, capsys):
    def tensors(value):
        if isinstance(value, dict):
            return {k: tensors(v) for k, v in value.items()}
        return torch.ones(2) if value == "tensor" else value

    path = tmp_path / "weights.pt"
    torch.save(tensors(content), path)
    with pytest.raises(SystemExit) as done:
        run("model_info", [f"model={path}"])
    errors = error_lines(capsys)
    assert done.value.code == 1 and errors == [
        f"error: model={path} holds no model: {what}. Fix: pass a checkpoint written by training (e.g. "
        "weights/best.pt), which holds the model itself."
    ]


# --------------------------------------------------------------------- a folder or a FIFO named x.pt is not "missing"
@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_fifo_named_like_a_checkpoint_is_named_for_what_it_is(kind, tmp_path, capsys):
    path = tmp_path / "x.pt"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(SystemExit) as done:
        run("model_info", [f"model={path}"])
    errors = error_lines(capsys)
    expected = "is a folder, not a checkpoint file" if kind == "folder" else "is not a regular file (a pipe, socket"
    assert done.value.code == 1 and len(errors) == 1 and errors[0].startswith(f"error: model={path} {expected}")


# ------------------------------------------------------------------------- 5. a full disk during export leaves nothing
def test_a_full_disk_during_export_leaves_no_partial_file_and_names_it(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import errno
    import shutil

    model = shutil.copy(tiny_checkpoint, tmp_path / "tiny.pt")
    earlier = tmp_path / "tiny.onnx"
    earlier.write_bytes(b"an earlier, complete export")

    def full_disk(module, args, f, *rest, **kwargs):
        with open(f, "wb") as out:  # the exporter gets part of the way, as on a disk that fills up
            out.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", full_disk)
    with pytest.raises(SystemExit) as done:
        run("export", [f"model={model}", "format=onnx", "imgsz=64"])
    errors = error_lines(capsys)
    assert done.value.code == 1 and errors == [
        f"error: cannot write {earlier}: the disk is full (ENOSPC). Fix: free some space, or write elsewhere with "
        "project= (out= for data tools)."
    ]
    assert earlier.read_bytes() == b"an earlier, complete export"  # not replaced by the truncated one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx", "tiny.pt"]  # no staging folder left


# ------------------------------------------------------------------------- values echoed as the user typed them
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "0", "0,1"])
def test_a_cuda_device_this_machine_lacks_is_echoed_as_given(device, tiny_checkpoint, sample_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        run("val", [f"model={tiny_checkpoint}", f"data={sample_data}", f"device={device}", f"project={tmp_path}"])
    assert done.value.code == 1 and error_lines(capsys) == [
        f"error: device={device} asks for a CUDA device, but torch sees no CUDA device here. Fix: device=cpu."
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["predict", "model_info", "val"])
def test_a_url_as_model_is_echoed_whole(command, sample_data, tmp_path, capsys):
    url = "http://example.com/weights/best.pt"
    argv = {"predict": [f"source={tmp_path}"], "model_info": [], "val": [f"data={sample_data}"]}[command]
    with pytest.raises(SystemExit) as done:
        run(command, [f"model={url}", *argv])
    assert done.value.code == 1 and error_lines(capsys) == [
        f"error: model={url} is a URL; checkpoints are read from files, and a downloaded file is checked like any "
        "other. Fix: download it, then pass the file's path."
    ]


def test_many_unreadable_images_are_a_count_and_a_listing(tiny_checkpoint, tmp_path, capsys):
    import cv2
    import numpy as np

    source = tmp_path / "images"
    source.mkdir()
    empty = sorted(source / f"empty{i:03d}.jpg" for i in range(200))
    for path in empty:
        path.write_bytes(b"")
    cv2.imwrite(str(source / "good.jpg"), np.full((64, 64, 3), 127, np.uint8))
    listing = tmp_path / "runs" / "predict" / "unreadable.txt"
    with pytest.warns(UserWarning) as caught:
        run("predict", [f"model={tiny_checkpoint}", f"source={source}", f"project={tmp_path / 'runs'}", "imgsz=64"])
    printed = capsys.readouterr()
    assert "Image Read Error" not in printed.out + printed.err and "empty0" not in printed.out + printed.err
    assert [str(w.message) for w in caught if "could not be read" in str(w.message)] == [
        f"200 file(s) of source={source} could not be read as images (empty or damaged) and were skipped; listed in "
        f"{listing}"
    ]
    assert sorted(listing.read_text().splitlines()) == [str(path) for path in empty]

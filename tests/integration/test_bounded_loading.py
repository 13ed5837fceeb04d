"""A checkpoint's pickle may build only what checkpoints hold, and only from what the file holds.

The pickles here are written opcode by opcode (pickle protocol 2; the opcodes are those of Python's ``pickletools``
documentation), so each test states exactly what a hostile file asks for.
"""

import io
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from attnyolo.errors import CheckpointError, without_unsafe_advice
from attnyolo.integration.checkpoints import TRUST_ENV, read_checkpoint, screen_checkpoint
from attnyolo.integration.checkpoints.pickles import archive_pickle, scan_pickles


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    monkeypatch.setenv(TRUST_ENV, "0")


def glob(module: str, name: str) -> bytes:
    """The GLOBAL opcode for ``module.name``."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value: str) -> bytes:
    """BINUNICODE: a string."""
    return b"X" + struct.pack("<I", len(value.encode())) + value.encode()


def integer(value: int) -> bytes:
    """BININT: a 32-bit signed int."""
    return b"J" + struct.pack("<i", value)


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)``: the callable, MARK, the arguments, TUPLE, REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def in_checkpoint(path: Path, data_pkl: bytes) -> Path:
    """A torch zip checkpoint (torch.save's own archive) whose data.pkl is ``data_pkl``."""
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for item in source.infolist():
            out.writestr(item, data_pkl if item.filename.endswith("data.pkl") else source.read(item))
    return path


def evil_pickle(marker: Path) -> bytes:
    """``posix.system('touch <marker>')``."""
    return b"\x80\x02" + call(glob("posix", "system"), text(f"touch '{marker}'")) + b"."


def refused(path: Path) -> str:
    """read_checkpoint's one-line refusal of ``path`` (it must refuse)."""
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path, label=f"model={path.name}")
    message = str(error.value)
    assert "\n" not in message and "weights_only" not in message and "Re-running" not in message, message
    return message


# --------------------------------------------------------------------- 4. the scan reads exactly what torch loads
def test_an_archive_with_its_pickle_twice_is_refused_before_either_is_read(tmp_path):
    marker = tmp_path / "ran"
    path = in_checkpoint(tmp_path / "dup.pt", b"\x80\x02}q\x00.")  # benign first: what zipfile's list shows first
    with zipfile.ZipFile(path, "a") as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        archive.writestr(name, evil_pickle(marker))  # torch's reader takes this one
    message = refused(path)
    assert message.startswith(f"model=dup.pt: refused to load: the zip archive holds {name!r} twice, "), message
    assert message.endswith("If you trust this file, pass trust_checkpoint=True (or set ATTNYOLO_TRUST_CHECKPOINTS=1).")
    assert not marker.exists()


def test_an_archive_with_a_second_pickle_in_another_folder_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = in_checkpoint(tmp_path / "two.pt", b"\x80\x02}q\x00.")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("other/data.pkl", evil_pickle(marker))
    assert "refused to load: the zip archive holds 2 pickles" in refused(path)
    assert not marker.exists()


def test_the_scanned_bytes_are_the_ones_torchs_reader_returns(tmp_path):
    payload = b"\x80\x02" + call(glob("collections", "OrderedDict")) + b"."
    path = in_checkpoint(tmp_path / "plain.pt", payload)
    assert archive_pickle(path) == torch._C.PyTorchFileReader(str(path)).get_record("data.pkl") == payload


def test_train_pretrained_with_a_doubled_pickle_makes_no_run_folder(tmp_path, run_command):
    marker = tmp_path / "ran"
    path = in_checkpoint(tmp_path / "dup.pt", b"\x80\x02}q\x00.")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(next(n for n in archive.namelist() if n.endswith("data.pkl")), evil_pickle(marker))
    project = tmp_path / "runs"
    done = run_command("train", "model=yolov8n.yaml", f"pretrained={path}", f"project={project}", "epochs=1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "refused to load: the zip archive holds" in done.stderr and "Re-running" not in done.stderr
    assert not project.exists() and not marker.exists()


def test_torchs_advice_to_unpickle_in_full_never_reaches_a_message():
    torch_text = (
        "Weights only load failed. This file can still be loaded, to do so you have two options, do those steps only "
        "if you trust the source of the checkpoint. \n\t(1) In PyTorch 2.6, we changed the default value of the "
        "`weights_only` argument in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` "
        "set to `False` will likely succeed, but it can result in arbitrary code execution.\n\tWeightsUnpickler "
        "error: Unsupported global: GLOBAL posix.system was not an allowed global by default. Please use "
        "`torch.serialization.add_safe_globals([system])` to allowlist this global.\n\nCheck the documentation"
    )
    assert without_unsafe_advice(torch_text) == (
        "torch's weights-only reader refused it (Unsupported global: GLOBAL posix.system was not an allowed global by "
        "default)"
    )
    assert without_unsafe_advice("a plain message") == "a plain message"


# --------------------------------------------------- 3. constructors: only argument-checked ones, from file data
@pytest.mark.parametrize(
    ("pickled", "named"),
    [
        # an allowlisted layer class called with arguments: its __init__ would allocate (2000 x 2000 floats here; the
        # issue's 20000 x 20000 took 3.9 GB)
        (
            call(glob("torch.nn.modules.linear", "Linear"), integer(2000), integer(2000)),
            "torch.nn.modules.linear.Linear",
        ),
        # Ultralytics' TorchVision layer downloads weights in its __init__
        (
            call(glob("ultralytics.nn.modules.block", "TorchVision"), text("resnet18"), text("DEFAULT")),
            "ultralytics.nn.modules.block.TorchVision",
        ),
        (
            call(glob("ultralytics.nn.tasks", "DetectionModel"), text("yolov8n.yaml")),
            "ultralytics.nn.tasks.DetectionModel",
        ),
        # allowed by torch's own weights-only table, but allocating from a number in the pickle
        (call(glob("builtins", "bytearray"), integer(1 << 30)), "builtins.bytearray"),
        (call(glob("torch", "FloatTensor"), integer(1 << 28)), "torch.FloatTensor"),
        (call(glob("torch.storage", "UntypedStorage"), integer(1 << 30)), "torch.storage.UntypedStorage"),
        # NEWOBJ runs cls.__new__(cls, *args): ndarray.__new__ allocates its shape
        (glob("numpy", "ndarray") + b"(" + integer(1 << 30) + b"t\x81", "numpy.ndarray"),
    ],
)
def test_a_call_outside_the_narrow_list_is_refused_by_name(pickled, named, tmp_path):
    path = in_checkpoint(tmp_path / "call.pt", b"\x80\x02" + pickled + b".")
    message = refused(path)
    assert message.startswith(f"model=call.pt: refused to load: it references a call of {named}, which "), message
    screen = pytest.raises(CheckpointError, screen_checkpoint, path, "pretrained=call.pt")  # refused before a run too
    assert f"a call of {named}" in str(screen.value)


def test_a_call_of_a_computed_value_is_refused(tmp_path):
    getattr_call = call(glob("builtins", "getattr"), glob("torch.nn.modules.linear", "Linear"), text("forward"))
    path = in_checkpoint(tmp_path / "computed.pt", b"\x80\x02" + getattr_call + b"(tR.")
    assert "it references a call of a value computed while unpickling" in refused(path)


@pytest.mark.parametrize(
    ("pickled", "reason"),
    [
        # numpy's array reconstructor as ndarray.__reduce__ never calls it: a shape from the pickle
        (
            call(
                glob("numpy.core.multiarray", "_reconstruct"),
                glob("numpy", "ndarray"),
                integer(1 << 30) + b"\x85",
                call(glob("_codecs", "encode"), text("b"), text("latin1")),
            ),
            "is not how numpy pickles an array",
        ),
        # a numpy scalar of a 1 GB void dtype
        (
            call(
                glob("numpy.core.multiarray", "scalar"),
                call(glob("numpy", "dtype"), text("V1000000000"), b"\x89\x88"),
                call(glob("_codecs", "encode"), text("x"), text("latin1")),
            ),
            "is not a number type checkpoints hold",
        ),
        # a path built from something other than text
        (call(glob("pathlib", "PosixPath"), integer(3)), "holds text parts only"),
    ],
)
def test_argument_checked_constructors_refuse_what_numpy_and_pathlib_never_pickle(pickled, reason, tmp_path):
    path = in_checkpoint(tmp_path / "args.pt", b"\x80\x02" + pickled + b".")
    assert reason in refused(path)


def test_argument_checked_constructors_still_build_what_checkpoints_hold(tmp_path):
    import numpy as np

    value = {"fitness": np.float64(0.25), "array": np.arange(3.0), "dir": Path("runs/train/exp"), "w": torch.ones(2)}
    torch.save(value, tmp_path / "data.pt")
    loaded = read_checkpoint(tmp_path / "data.pt")
    assert loaded["fitness"] == np.float64(0.25) and loaded["array"].tolist() == [0.0, 1.0, 2.0]
    assert loaded["dir"] == Path("runs/train/exp") and torch.equal(loaded["w"], torch.ones(2))


def test_the_scan_follows_calls_through_the_memo(tmp_path):
    # The class is stored in the memo (BINPUT 0) and fetched back (BINGET 0) before it is called.
    data = b"\x80\x02" + glob("torch.nn.modules.linear", "Linear") + b"q\x000h\x00(" + integer(4) + integer(4) + b"tR."
    scan = scan_pickles(data)
    assert list(scan.calls) == ["torch.nn.modules.linear.Linear"] and list(scan.names) == list(scan.calls)


def test_storages_of_a_file_in_torchs_older_format_must_fit_in_the_file(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(4)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # the storage's element count (BININT1 4, after its location 'cpu') claims 2**30 floats: 4 GiB torch would allocate
    patched = re.sub(rb"(cpuq.)K\x04", lambda m: m.group(1) + integer(1 << 30), data, count=1)
    assert patched != data
    path.write_bytes(patched)
    message = refused(path)
    assert "its pickle declares 4,294,967,296 bytes of tensor storage, more than the whole file" in message


def test_a_real_checkpoint_of_a_model_still_loads(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    cfg = {"nc": 2, "backbone": [[-1, 1, "Conv", [8, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}
    torch.save({"model": DetectionModel(cfg, verbose=False), "epoch": -1}, tmp_path / "ok.pt")
    assert isinstance(read_checkpoint(tmp_path / "ok.pt")["model"], DetectionModel)

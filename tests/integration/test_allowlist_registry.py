"""One registry of torch's weights-only allowlist: checkpoint reads that overlap in time never undo each other.

torch's allowlist is process-wide. The safe reader registers what Ultralytics and AttnYOLO checkpoints hold for the
whole process; the classic YOLOv5 reader adds code-free stand-ins for ``models.*`` classes for one load only. These
tests run the two interleaved and concurrently, starting from an empty allowlist each time.
"""

import collections
import pickle
import threading
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

import attnyolo  # noqa: F401  (registers the layers and the safe loader)
from attnyolo.errors import CheckpointError
from attnyolo.integration import checkpoints, self_checks
from attnyolo.integration.checkpoints import (
    TRUST_ENV,
    allow_globals,
    pickle_globals,
    read_checkpoint,
    referenced_globals,
    scoped_globals,
)
from attnyolo.yolov5 import checkpoint as classic

CLASSIC = Path(__file__).resolve().parents[1] / "fixtures" / "yolov5" / "tiny_ca_fork.pt"


@pytest.fixture(autouse=True)
def empty_allowlist(monkeypatch):
    """Start from an empty process allowlist (as a fresh process does) and put the previous one back afterwards."""
    monkeypatch.setenv(TRUST_ENV, "0")
    saved_torch, saved_ours = torch.serialization.get_safe_globals(), dict(checkpoints._registered)
    torch.serialization.clear_safe_globals()
    checkpoints._registered.clear()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved_torch)
    checkpoints._registered.clear()
    checkpoints._registered.update(saved_ours)


@pytest.fixture
def native(tmp_path):
    path = tmp_path / "native.pt"
    torch.save({"model": DetectionModel(dict(self_checks._LAYERS_CFG), verbose=False), "epoch": -1}, path)
    return path


def registered() -> set[str]:
    return checkpoints._torch_registered_names()


class PausedLoad:
    """Runs ``read_classic(CLASSIC)`` in a thread that stops inside its torch.load, i.e. while its scope is open."""

    def __init__(self, monkeypatch):
        self.inside, self.go, self.result = threading.Event(), threading.Event(), {}
        real_load = torch.load

        def load(f, *args, **kwargs):
            if Path(str(f)) == CLASSIC and threading.current_thread() is self.thread:
                self.inside.set()
                assert self.go.wait(60)
            return real_load(f, *args, **kwargs)

        monkeypatch.setattr(torch, "load", load)
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            self.result["ckpt"] = classic.read_classic(CLASSIC)
        except Exception as error:  # reported by finish()
            self.result["error"] = error

    def __enter__(self):
        self.thread.start()
        assert self.inside.wait(60), "the classic read never reached torch.load"
        return self

    def __exit__(self, *exc):
        self.go.set()
        self.thread.join(60)

    def finish(self):
        self.__exit__()
        assert "error" not in self.result, self.result.get("error")
        return self.result["ckpt"]


def test_a_classic_read_ending_keeps_what_a_load_registered_meanwhile(monkeypatch, native):
    with PausedLoad(monkeypatch) as paused:
        assert any(name.startswith("models.") for name in registered())  # the stand-ins, for this load
        assert isinstance(read_checkpoint(native)["model"], DetectionModel)  # registers torch.nn and AttnYOLO layers
        during = registered()
    paused.finish()
    after = registered()
    assert not any(name.startswith("models.") for name in after)  # the stand-ins are gone ...
    assert {name for name in during if not name.startswith("models.")} <= after  # ... and nothing else is
    assert isinstance(read_checkpoint(native)["model"], DetectionModel)  # the next load still finds its entries


def test_stand_ins_registered_for_a_classic_read_do_not_reach_another_load(monkeypatch):
    # While one classic read holds its stand-ins, reading the same kind of file through the safe reader must still
    # find the models.* classes and map the file with its foreign format, not unpickle it with the stand-ins.
    with PausedLoad(monkeypatch) as paused:
        names, _ = referenced_globals(CLASSIC)
        assert "models.yolo.DetectionModel" in names
        ckpt = read_checkpoint(CLASSIC)
        assert type(ckpt["model"]) is DetectionModel
    assert isinstance(paused.finish()["model"], classic.ClassicStandIn)


def test_scoped_entries_are_shared_by_open_scopes_and_kept_once_made_permanent():
    name = "torch.nn.modules.linear.Identity"
    stand_in = classic._stand_in("models.common.Focus")
    with scoped_globals({"models.common.Focus": stand_in}):
        with scoped_globals({"models.common.Focus": stand_in}):
            assert "models.common.Focus" in registered()
        assert "models.common.Focus" in registered()  # the outer scope still uses it
        with pytest.raises(ValueError, match="already allowed"):
            with scoped_globals({"models.common.Focus": torch.nn.Identity}):
                pass
    assert "models.common.Focus" not in registered()
    with scoped_globals({name: torch.nn.Identity}):
        allow_globals([name], "test")  # a load registers it for the process while the scope is open
    assert name in registered()
    with scoped_globals({name: torch.nn.Identity}):
        pass  # already registered for the process: the scope leaves it alone
    assert name in registered()


def test_concurrent_classic_and_native_reads(native):
    errors, start = [], threading.Barrier(4)

    def run(read, check):
        try:
            start.wait(60)
            for _ in range(3):
                assert check(read())
        except Exception as error:  # collected and reported below
            errors.append(error)

    classic_read = (lambda: classic.read_classic(CLASSIC), lambda c: isinstance(c["model"], classic.ClassicStandIn))
    native_read = (lambda: read_checkpoint(native), lambda c: type(c["model"]) is DetectionModel)
    threads = [threading.Thread(target=run, args=job) for job in (classic_read, native_read) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert not any(name.startswith("models.") for name in registered())
    assert set(checkpoints._registered) <= registered()  # every permanent entry is still in torch's allowlist


def test_without_torchs_private_table_the_public_scan_gives_the_same_names(monkeypatch, native):
    expected = referenced_globals(native)[0]
    from attnyolo.integration.checkpoints import screen

    monkeypatch.setattr(screen, "torch_default_globals", lambda: None)
    read_checkpoint(native)  # registers its globals, which torch's own scan then leaves out
    assert referenced_globals(native)[0] == expected
    assert type(read_checkpoint(native)["model"]) is DetectionModel


def test_pickle_globals_reads_every_protocols_global_opcodes():
    assert pickle_globals(pickle.dumps(set, protocol=2)) == ["builtins.set"]  # __builtin__ mapped as pickle maps it
    both = [collections.OrderedDict, collections.Counter]
    # protocol 4: STACK_GLOBAL, the second module name fetched from the memo
    assert pickle_globals(pickle.dumps(both, protocol=4)) == ["collections.OrderedDict", "collections.Counter"]
    assert pickle_globals(pickle.dumps(both, protocol=2)) == ["collections.OrderedDict", "collections.Counter"]
    assert pickle_globals(b"(i__main__\nX\n.") == ["<pickle opcode INST>"]
    # a STACK_GLOBAL whose name is computed at load time (here: str() of a call) cannot be named: listed as opcode
    computed = b"\x80\x04\x8c\x02os\x8c\x08builtins\x8c\x03str\x93\x8c\x06system\x85R\x93."
    assert pickle_globals(computed) == ["builtins.str", "<pickle opcode STACK_GLOBAL>"]
    with pytest.raises(ValueError, match="damaged pickle data"):
        pickle_globals(pickle.dumps(both, protocol=4)[:-3])
    assert pickle_globals(pickle.dumps(both, protocol=4)[:-3], partial=True) == [
        "collections.OrderedDict",
        "collections.Counter",
    ]


def test_a_pickle_of_many_strings_is_scanned_in_one_pass():
    import tracemalloc

    # The scan follows the pickle's stack (what REDUCE calls, what STACK_GLOBAL names), so its memory grows with the
    # stack at most linearly in the pickle's size (itself capped); one that rebuilt the list of strings per opcode took
    # minutes on 300,000.
    data = b"\x80\x02(" + b"\x8c\x01a" * 20_000 + b"l."
    tracemalloc.start()
    try:
        found = pickle_globals(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == [] and peak < 30 * len(data)  # bytes: a pointer and its list slot per stacked value, no more
    assert pickle_globals(b"\x80\x02(" + b"\x8c\x01a" * 300_000 + b"l.") == []  # the auditor's file: milliseconds
    # What STACK_GLOBAL names still comes from the last two strings, also after many others.
    assert pickle_globals(b"\x80\x04(" + b"\x8c\x01a" * 1000 + b"\x8c\x05posix\x8c\x06system\x93.") == ["posix.system"]


def test_a_pickle_larger_than_any_checkpoints_is_refused_unread(tmp_path, monkeypatch):
    import zipfile

    from attnyolo.integration.checkpoints.pickles import MAX_PICKLE_BYTES

    path = tmp_path / "big.pt"  # 8 MiB of MARK opcodes, a few kilobytes compressed
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big/data.pkl", b"\x80\x02" + b"(" * (MAX_PICKLE_BYTES - 1))
        archive.writestr("big/version", b"3\n")
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a, **k: pytest.fail("the oversized record was read"))
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(path, label=f"model={path}")
    message = str(refused.value)
    assert message.startswith(f"model={path}: refused to load: its pickle big/data.pkl is 8,388,609 bytes ")
    assert "more than the 8,388,608 bytes a checkpoint's pickle needs" in message and "\n" not in message
    assert message.endswith("If you trust this file, pass trust_checkpoint=True (or set ATTNYOLO_TRUST_CHECKPOINTS=1).")


def test_pickles_of_the_old_format_longer_than_any_checkpoints_are_refused(tmp_path, monkeypatch):
    from attnyolo.integration.checkpoints import pickles, refusals, screen

    for module in (screen, refusals, pickles):  # the scan (pickles) and the messages use the same cap
        monkeypatch.setattr(module, "MAX_PICKLE_BYTES", 1000)  # a small cap: the scan stops after 1000 bytes
    path = tmp_path / "old.pt"
    path.write_bytes(b"\x80\x02" + b"(" * 5000)  # torch's pre-1.6 format starts with a pickle
    with pytest.raises(CheckpointError, match=r"^.*old\.pt: refused to load: its pickles run past 1,000 bytes"):
        read_checkpoint(path)

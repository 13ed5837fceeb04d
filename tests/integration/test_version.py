"""The Ultralytics version policy: inside the tested range nothing happens; outside it a self-check decides."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import attnyolo
from attnyolo.integration import internals, version

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def attnyolo_log(caplog):
    caplog.set_level(logging.WARNING, logger="attnyolo")
    return caplog


def test_installed_version_is_in_the_tested_range_and_the_dependency_pin_is_that_range():
    import ultralytics

    assert version.in_tested_range(ultralytics.__version__)
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("ultralytics"))
    assert pin == f"ultralytics>={version.TESTED_RANGE[0]},<={version.TESTED_RANGE[1]}"


@pytest.mark.parametrize(("v", "inside"), [("8.4.180", True), ("8.4.190", True), ("8.4.179", False), ("8.5.0", False)])
def test_range_ends_are_inclusive(v, inside):
    assert version.in_tested_range(v) is inside


def test_inside_the_range_no_self_check_runs(monkeypatch, attnyolo_log):
    monkeypatch.setattr(version, "self_check", lambda: pytest.fail("self-check ran inside the tested range"))
    assert version.check_installed() == version.installed_version()
    assert not attnyolo_log.records


def test_outside_the_range_warns_and_self_checks_then_passes(monkeypatch, attnyolo_log, tmp_path):
    monkeypatch.setenv("ATTNYOLO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(version, "installed_version", lambda: "8.4.999")
    monkeypatch.setitem(version._state, "checked", None)
    ran = []
    real = version.self_check
    monkeypatch.setattr(version, "self_check", lambda: ran.append(real()))
    assert version.check_installed() == "8.4.999"
    assert ran == [None]
    text = " ".join(r.getMessage() for r in attnyolo_log.records)
    assert "8.4.999 is outside the tested range 8.4.180 to 8.4.190" in text and "self-check passed" in text
    attnyolo_log.clear()
    version.check_installed()  # once per process and version
    assert ran == [None] and not attnyolo_log.records


def test_a_passed_self_check_is_recorded_and_not_repeated_by_the_next_process(monkeypatch, attnyolo_log, tmp_path):
    monkeypatch.setenv("ATTNYOLO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(version, "installed_version", lambda: "8.4.999")
    monkeypatch.setitem(version._state, "checked", None)
    ran = []
    monkeypatch.setattr(version, "self_check", lambda: ran.append(1))
    version.check_installed()
    record = version.pass_record("8.4.999")
    assert ran == [1] and record.parent == tmp_path / "cache" and record.is_file()
    assert "8.4.999" in record.name and attnyolo.__version__ in record.name
    monkeypatch.setitem(version._state, "checked", None)  # a new process
    attnyolo_log.clear()
    version.check_installed()
    assert ran == [1], "the recorded pass was checked again"
    text = " ".join(r.getMessage() for r in attnyolo_log.records)
    assert "outside the tested range" in text and "passed earlier on this machine" in text and str(record) in text
    monkeypatch.setitem(version._state, "checked", None)  # another Ultralytics release: its own check
    monkeypatch.setattr(version, "installed_version", lambda: "8.4.998")
    version.check_installed()
    assert ran == [1, 1]


def test_a_failed_self_check_records_nothing_and_an_unwritable_cache_is_harmless(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")  # mkdir fails: the pass cannot be recorded
    monkeypatch.setenv("ATTNYOLO_CACHE_DIR", str(cache))
    monkeypatch.setattr(version, "installed_version", lambda: "8.4.999")
    monkeypatch.setitem(version._state, "checked", None)
    monkeypatch.setattr(version, "self_check", lambda: None)
    assert version.check_installed() == "8.4.999"
    monkeypatch.setenv("ATTNYOLO_CACHE_DIR", str(tmp_path / "fresh"))
    monkeypatch.setitem(version._state, "checked", None)

    def fails():
        raise attnyolo.UnsupportedUltralyticsError("ultralytics 8.4.999 changed x")

    monkeypatch.setattr(version, "self_check", fails)
    with pytest.raises(attnyolo.UnsupportedUltralyticsError):
        version.check_installed()
    assert not version.pass_record("8.4.999").exists()


# Patches whose undoing changes what Ultralytics does; strip_optimizer and save_model keep their behaviour unwrapped
# (the wrap only makes their writes atomic), so their check proves the internal's contract, tested below.
UNDONE_CHANGES_BEHAVIOUR = (
    "parse_model",
    "check_yaml",
    "yaml_model_load",
    "fuse",
    "init_criterion",
    "get_flops",
    "torch_safe_load",
)


@pytest.mark.parametrize("patch", [p for p in internals.PATCHES if p.attribute in UNDONE_CHANGES_BEHAVIOUR])
def test_self_check_names_the_internal_that_no_longer_behaves(monkeypatch, patch):
    # Undo one patch, as if Ultralytics had renamed what attnyolo wraps: the check the patch names must fail.
    owner = internals._resolve(patch.owner)
    monkeypatch.setattr(owner, patch.attribute, getattr(owner, patch.attribute)._attnyolo_original)
    monkeypatch.setattr(version, "installed_version", lambda: "8.9.0")
    with pytest.raises(attnyolo.UnsupportedUltralyticsError) as error:
        version.self_check()
    message = str(error.value)
    assert f"the '{patch.check}' self-check failed" in message and "ultralytics 8.9.0 changed" in message
    assert "pip install 'ultralytics>=8.4.180,<=8.4.190'" in message


def test_every_patch_and_read_names_the_self_check_that_proves_it():
    assert {p.attribute for p in internals.PATCHES} >= set(UNDONE_CHANGES_BEHAVIOUR)
    for patch in internals.PATCHES:
        assert patch.check in version.SELF_CHECKS, f"{patch.owner}.{patch.attribute} names no existing self-check"
        assert len(patch.why) > 20
    for read in internals.READS:
        assert read.check is None or read.check in version.SELF_CHECKS, read.fact
        assert read.where.split(" ", 1)[0].split(":", 1)[0].endswith(".py"), read.where  # names the module
        assert read.check is not None or "no self-check" in read.where, f"{read.fact}: unchecked without a reason"
    named = {p.check for p in internals.PATCHES} | {r.check for r in internals.READS}
    assert set(version.SELF_CHECKS) <= named, "a self-check that proves nothing listed"


def _fails(check: str, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        version.SELF_CHECKS[check][1]()


def test_results_csv_check_fails_when_the_epoch_column_changes(monkeypatch):
    from ultralytics.engine.trainer import BaseTrainer

    def zero_based(self, metrics):
        with open(self.csv, "a") as f:
            f.write(("" if self.csv.stat().st_size else "epoch,time\n") + f"{self.epoch},0\n")

    monkeypatch.setattr(BaseTrainer, "save_metrics", lambda self, m: (self.csv.touch(), zero_based(self, m)))
    _fails("results_csv", "results.csv's first column")


def test_random_perspective_check_fails_when_scale_is_a_number_again(monkeypatch):
    from ultralytics.data.augment import RandomPerspective

    init = RandomPerspective.__init__

    def scalar_only(self, *args, scale=0.5, **kwargs):
        init(self, *args, scale=0.5 if isinstance(scale, tuple) else scale, **kwargs)  # a range ignored: 1 +- 0.5

    monkeypatch.setattr(RandomPerspective, "__init__", scalar_only)
    _fails("random_perspective", r"scale=\(2, 2\)")


def test_dataset_layout_check_fails_when_the_label_shape_is_width_first(monkeypatch):
    from ultralytics.data.dataset import YOLODataset

    get_labels = YOLODataset.get_labels

    def width_first(self):
        return [{**label, "shape": label["shape"][::-1]} for label in get_labels(self)]

    monkeypatch.setattr(YOLODataset, "get_labels", width_first)
    _fails("dataset_layout", "dataset.labels gave")


def test_trainer_loop_check_fails_when_the_ema_is_copied_before_the_class_weights(monkeypatch):
    import inspect

    from ultralytics.engine.trainer import BaseTrainer

    real = inspect.getsource
    moved = real(BaseTrainer._setup_train).replace("self.set_class_weights()", "pass") + "self.set_class_weights()"
    monkeypatch.setattr(inspect, "getsource", lambda obj: moved if obj is BaseTrainer._setup_train else real(obj))
    _fails("trainer_loop", "set_class_weights")


def test_classic_blocks_check_fails_when_the_parser_builds_its_own_bottlenecks(monkeypatch):
    import contextlib

    from attnyolo.integration import parser

    monkeypatch.setattr(parser, "_head_blocks", contextlib.nullcontext)  # as if parse_model ignored the names
    _fails("classic_blocks", "row 2 built BottleneckCSP")


def test_a_missing_internal_is_named(monkeypatch):
    from ultralytics.engine import trainer

    monkeypatch.delattr(trainer, "strip_optimizer")
    with pytest.raises(attnyolo.UnsupportedUltralyticsError, match=r"no ultralytics\.engine\.trainer\.strip_optimizer"):
        attnyolo.register()


@pytest.mark.slow
def test_import_outside_the_range_warns_and_works_in_a_fresh_process():
    code = (
        "import ultralytics; ultralytics.__version__ = '8.5.1'\n"
        "import attnyolo\n"
        "from ultralytics import YOLO\n"
        "print(type(YOLO('yolov8n-ELA-S.yaml').model.model[5]).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ELA"
    assert "ultralytics 8.5.1 is outside the tested range 8.4.180 to 8.4.190" in out.stderr
    assert "self-check passed on ultralytics 8.5.1" in out.stderr
    assert "departs from the paper" not in out.stderr  # the self-check's own models raise no layer warnings


# torch 2.11's argument-mismatch TypeError, as it spans lines (the shape of its text; the self-check quotes it).
_MULTI_LINE = (
    "add() received an invalid combination of arguments - got (int),\n but expected one of:\n * (Tensor input)\n"
)


def _divisible_raising(x, divisor):
    raise TypeError(_MULTI_LINE)


def test_a_multi_line_reason_is_cut_to_its_first_line(monkeypatch):
    from attnyolo.integration import version

    monkeypatch.setattr(
        version, "SELF_CHECKS", {"probe": ("ultralytics.utils.ops.make_divisible", lambda: _divisible_raising(1, 8))}
    )
    with pytest.raises(attnyolo.UnsupportedUltralyticsError) as caught:
        version.self_check()
    message = str(caught.value)
    assert "\n" not in message
    assert (
        "self-check failed (add() received an invalid combination of arguments - got (int), [2 more lines: " in message
    )
    assert str(caught.value.__cause__) == _MULTI_LINE  # the whole text stays on the chain, shown under ATTNYOLO_DEBUG


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("reason", ["rounding", "multi-line"])
def test_a_refusal_at_import_is_one_line_and_exit_1_for_every_entry_point(tmp_path, debug, reason):
    # An Ultralytics "release" outside the range whose make_divisible stopped rounding (or raises an error whose text
    # spans lines, as torch 2.11's argument-mismatch TypeError does): the self-check refuses while attnyolo is
    # imported, before any tool's error handling runs. Uncaught, it must read as one line.
    patch = (
        "ops.make_divisible = lambda x, divisor: x\n"
        if reason == "rounding"
        else f"def raising(x, divisor):\n    raise TypeError({_MULTI_LINE!r})\nops.make_divisible = raising\n"
    )
    code = (
        "import ultralytics, ultralytics.utils.ops as ops\nultralytics.__version__ = '8.9.0'\n"
        + patch
        + "import attnyolo\n"
    )
    env = {**os.environ, "ATTNYOLO_CACHE_DIR": str(tmp_path), "ATTNYOLO_DEBUG": "1" if debug else "0"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "ultralytics 8.9.0 changed" in last and "pip install 'ultralytics>=8.4.180,<=8.4.190'" in last
    if debug:
        assert "Traceback" in run.stderr
    else:
        assert "Traceback" not in run.stderr and last.startswith("error: ultralytics 8.9.0 changed")

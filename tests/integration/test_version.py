"""The Ultralytics version policy: inside the tested range nothing happens; outside it a self-check decides."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from ultralytics.nn import tasks

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


def test_outside_the_range_warns_and_self_checks_then_passes(monkeypatch, attnyolo_log):
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


@pytest.mark.parametrize(
    ("owner", "attribute", "check"),
    [
        (tasks, "parse_model", "parser"),
        (tasks, "check_yaml", "names"),
        (tasks.BaseModel, "fuse", "fuse"),
        (tasks.DetectionModel, "init_criterion", "criterion"),
        (tasks, "torch_safe_load", "safe_load"),
    ],
)
def test_self_check_names_the_internal_that_no_longer_behaves(monkeypatch, owner, attribute, check):
    # Undo one patch, as if Ultralytics had renamed what attnyolo wraps: the check of that path must fail by behaviour.
    monkeypatch.setattr(owner, attribute, getattr(owner, attribute)._attnyolo_original)
    monkeypatch.setattr(version, "installed_version", lambda: "8.9.0")
    with pytest.raises(attnyolo.UnsupportedUltralyticsError) as error:
        version.self_check()
    message = str(error.value)
    assert f"the '{check}' self-check failed" in message and "ultralytics 8.9.0 changed" in message
    assert "pip install 'ultralytics>=8.4.180,<=8.4.190'" in message


def test_every_patch_has_a_self_check_and_a_reason():
    proven = " ".join(internal for internal, _ in version.SELF_CHECKS.values())
    for patch in internals.PATCHES:
        assert patch.attribute in proven, f"{patch.owner}.{patch.attribute} is patched but no self-check covers it"
        assert len(patch.why) > 20


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

"""The package as users install it: every subpackage listed, the wheel carries the YAMLs, names build from anywhere."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_folder():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        "attnyolo" + ".".join(["", *p.parent.relative_to(REPO / "models").parts])
        for p in (REPO / "models").rglob("__init__.py")
    }
    assert found | {"attnyolo.cfg", "attnyolo.datasets"} == listed
    assert config["package-dir"] == {"attnyolo": "models", "attnyolo.cfg": "cfg", "attnyolo.datasets": "data"}


def test_the_version_is_pyprojects_installed_or_not(monkeypatch):
    import importlib.metadata

    import attnyolo

    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert attnyolo.__version__ == expected

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)  # a source tree used without pip install
    assert attnyolo._version() == expected


def test_console_command_lists_the_tools():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"attnyolo": "attnyolo.commands:main"}
    from attnyolo.commands import COMMANDS

    tools = {p.stem for p in (REPO / "tools").glob("*.py")}
    assert tools == set(COMMANDS)  # every tool is a command, and tools/ holds nothing else


@pytest.mark.slow
def test_wheel_installs_and_builds_shipped_names_from_any_directory(tmp_path):
    wheels, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Build from a copy of the sources: setuptools writes build/ and egg-info next to what it builds.
    source = tmp_path / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "runs", "sample", "*.egg-info")
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("attnyolo-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    assert sorted((target / "attnyolo" / "cfg").rglob("*.yaml"))  # the YAMLs travel inside the package
    assert (target / "attnyolo" / "layers" / "fast" / "csrc" / "fused_attention.cpp").is_file()
    shipped = sorted(p.name for p in (target / "attnyolo" / "datasets").iterdir())
    assert shipped == sorted(p.name for p in (REPO / "data").glob("*.yaml")) == ["VOC.yaml", "coco.yaml"]

    code = (
        "import attnyolo, sys\n"
        "from pathlib import Path\n"
        "from ultralytics import YOLO\n"
        "assert Path(attnyolo.__file__).is_relative_to(Path(sys.argv[1])), attnyolo.__file__\n"
        "print('version', attnyolo.__version__)\n"
        "from attnyolo.data.data_yaml import shipped_data_yaml\n"
        "assert shipped_data_yaml('data/VOC.yaml') == Path(attnyolo.__file__).parent / 'datasets' / 'VOC.yaml'\n"
        "for name in ('yolov5s_Coordinate_attention.yaml', 'yolov8n-ELA-S.yaml', 'yolox-nano.yaml'):\n"
        "    model = YOLO(name).model\n"
        "    print(name, sum(p.numel() for p in model.parameters()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=600, cwd=elsewhere, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    counts = dict(line.split() for line in run.stdout.strip().splitlines()[-4:])
    # the wheel's metadata carries pyproject.toml's version, which the installed package reports
    assert counts["version"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert int(counts["yolox-nano.yaml"]) == 912_159  # YOLOX-Nano, official count (80 classes)
    # YOLOv8n as Ultralytics' yolov8.yaml states it (3,157,200 parameters) plus three ELA-S layers of 42·C parameters
    # each (8·k·C conv weights with k=5, 2·C GroupNorm affine) at the P3/P4/P5 widths 64, 128, 256; docs/zoo.md 3.176M
    assert int(counts["yolov8n-ELA-S.yaml"]) == 3_157_200 + 42 * (64 + 128 + 256) == 3_176_016
    # classic YOLOv5s as YOLOv5 v7.0 states it (7,235,389) plus three CoordAtt layers (reduction 32, hidden width
    # max(8, C/32)) at C = 128, 256, 512: 3,352 + 6,680 + 25,648; docs/models.md 7,271,069
    assert int(counts["yolov5s_Coordinate_attention.yaml"]) == 7_235_389 + 35_680 == 7_271_069
    assert not (elsewhere / "runs").exists()  # building writes no run folders

    command = subprocess.run(
        [sys.executable, "-m", "attnyolo", "model_info", "model=yolox-nano.yaml", "imgsz=416"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=elsewhere,
        env=env,
    )
    assert command.returncode == 0, command.stderr[-2000:]
    assert "yolox-nano.yaml: " in command.stdout and "912,159 parameters" in command.stdout

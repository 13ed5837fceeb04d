"""Every tool that opens a checkpoint refuses a malicious one in one line and runs nothing from it.

The malicious checkpoint (tests/conftest.py) holds a real model plus an object whose unpickling runs
``os.system("touch <marker>")``; the marker file is the proof that code ran.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from attnyolo.commands import run
from attnyolo.integration.checkpoints import TRUST_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    # setenv, not delenv: monkeypatch then also removes the value a tool under test sets for trust_checkpoint=True.
    monkeypatch.setenv(TRUST_ENV, "0")


def tool_cases(evil, data, image, out):
    """(tool, argv, the argument named in the message) for every way a tool opens a checkpoint."""
    return [
        ("train", [f"model={evil}", f"data={data}", f"project={out}"], "model"),
        ("train", ["model=yolov8n.yaml", f"pretrained={evil}", f"data={data}", f"project={out}"], "pretrained"),
        ("train", [f"resume={evil}", f"project={out}"], "resume"),
        ("val", [f"model={evil}", f"data={data}", f"project={out}"], "model"),
        ("predict", [f"model={evil}", f"source={image}", f"project={out}"], "model"),
        ("export", [f"model={evil}"], "model"),
        ("visualize", [f"model={evil}", f"source={image}", f"project={out}"], "model"),
        ("model_info", [f"model={evil}"], "model"),
        ("benchmark", [f"models={evil}", "layers=False", f"project={out}"], "models"),
    ]


def test_every_tool_refuses_a_malicious_checkpoint(malicious_checkpoint, sample_data, tmp_path, capsys):
    evil, marker = malicious_checkpoint()
    image = next((sample_data.parent / "images" / "val").glob("*.jpg"))
    for command, argv, key in tool_cases(evil, sample_data, image, tmp_path / "runs"):
        with pytest.raises(SystemExit) as done:
            run(command, argv)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert done.value.code == 1 and len(errors) == 1 and "Traceback" not in err, (command, err[-2000:])
        assert errors[0].startswith(f"error: {key}={evil}: refused to load: it references posix.system, which "), (
            command,
            errors[0],
        )
        assert errors[0].endswith(
            "If you trust this file, pass trust_checkpoint=True (or set ATTNYOLO_TRUST_CHECKPOINTS=1)."
        )
        assert not marker.exists(), command


def test_trust_checkpoint_opts_in_for_one_run(malicious_checkpoint, capsys, monkeypatch):
    evil, marker = malicious_checkpoint()
    run("model_info", [f"model={evil}", "trust_checkpoint=True"])  # the user vouches for the file: it is unpickled
    assert marker.exists() and "parameters" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "val", "train"])
def test_fresh_processes_refuse_and_exit_1(command, malicious_checkpoint, sample_data, tmp_path):
    evil, marker = malicious_checkpoint()
    image = next((sample_data.parent / "images" / "val").glob("*.jpg"))
    argv = {c: a for c, a, _ in tool_cases(evil, sample_data, image, tmp_path / "runs")}[command]
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / f"{command}.py"), *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr[-2000:]
    assert "refused to load: it references posix.system" in done.stderr and not marker.exists()


def test_pretrained_is_refused_before_the_run_folder_is_made(malicious_checkpoint, sample_data, tmp_path, capsys):
    evil, marker = malicious_checkpoint()
    project = tmp_path / "runs"
    with pytest.raises(SystemExit) as done:
        run("train", ["model=yolov8n.yaml", f"pretrained={evil}", f"data={sample_data}", f"project={project}"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and err.startswith(f"error: pretrained={evil}: refused to load: it references posix")
    assert err.count("\n") == 1  # not after Ultralytics' trainer banner
    assert not project.exists() and not marker.exists()  # no run folder, args.yaml or empty weights/


def test_import_weights_names_the_disallowed_global_and_the_opt_in(malicious_checkpoint, tmp_path, capsys):
    evil, marker = malicious_checkpoint()
    with pytest.raises(SystemExit) as done:
        run("import_weights", [f"source={evil}", f"out={tmp_path / 'x.pt'}"])
    assert done.value.code == 1 and capsys.readouterr().err == (
        f"error: source={evil}: refused to load: it references posix.system, which checkpoints written by Ultralytics "
        "or AttnYOLO never contain. If you trust this file, pass trust_checkpoint=True (or set "
        "ATTNYOLO_TRUST_CHECKPOINTS=1).\n"
    )
    assert not marker.exists() and not (tmp_path / "x.pt").exists()

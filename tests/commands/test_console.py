"""The `attnyolo` console command: the list of commands, dispatch, and its answers to a wrong command."""

import subprocess
import sys

import pytest

from attnyolo.commands import COMMANDS, main


def test_no_arguments_and_help_list_every_command(capsys):
    for argv in ([], ["help"], ["--help"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: attnyolo <command>")
        assert all(f"  {name} " in out for name in COMMANDS)


def test_unknown_command_is_a_usage_error_with_close_matches(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["trian", "epochs=1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown command 'trian'. Did you mean train, track?") and len(err.splitlines()) == 1


def test_dashes_reach_the_same_command_and_its_own_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["model-info", "help"])
    assert stop.value.code == 0
    assert "attnyolo model_info model=" in capsys.readouterr().out


def test_module_entry_point_runs_a_command(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "attnyolo", "model_info", "model=yolov8n-ECA.yaml", "imgsz=64"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("yolov8n-ECA.yaml: ") and "parameters" in lines[0]
    assert [ln.split()[3] for ln in lines[1:]] == ["ECAAttention"] * 3

"""Hostile but realistic inputs to the tools: a stranger's checkpoint or dataset must run nothing and write nothing
outside the folder the user named; a failure is one line naming the file.

The malicious checkpoint (tests/conftest.py) runs ``os.system("touch <marker>")`` when unpickled; the marker file is
the proof that code ran.
"""

import pytest

from attnyolo.commands import run
from attnyolo.integration.checkpoints import TRUST_ENV, checkpoints_trusted
from attnyolo.utils.cli import parse_bool, parse_kv_args


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

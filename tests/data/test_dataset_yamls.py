"""The shipped dataset YAMLs: their download scripts compile and call functions that exist, with the right data."""

import ast
from pathlib import Path

import pytest
import yaml

import attnyolo.data.downloads as downloads

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "data").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_download_script_imports_and_calls_what_exists(path, monkeypatch):
    data = yaml.safe_load(path.read_text())
    script = data["download"]
    tree = ast.parse(script)  # Ultralytics exec()s this text when the images are missing
    imported = [
        (node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    ]
    assert imported, "the script should call attnyolo's prepare function"
    for module, name in imported:
        assert callable(getattr(__import__(module, fromlist=[name]), name)), f"{module}.{name}"
    # Run it with the download itself replaced: it must hand the dataset root to the prepare function.
    calls = []
    for _, name in imported:
        monkeypatch.setattr(downloads, name, lambda root, name=name: calls.append((name, Path(root))))
    root = REPO / "datasets-never-created"
    exec(compile(tree, str(path), "exec"), {"yaml": {**data, "path": root}})  # noqa: S102  (our own file)
    assert calls and all(str(root) in str(where) for _, where in calls)

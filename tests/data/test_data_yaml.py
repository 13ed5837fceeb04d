"""Data YAMLs read with one-line errors, shared by the trainer's start-up check and the evaluators."""

import re

import pytest

from attnyolo.data.data_yaml import read_data_yaml, resolve_data_yaml
from attnyolo.engine.trainer import check_data_splits
from attnyolo.evaluation.ground_truth import load_split


def test_unreadable_data_yamls_fail_in_one_line_naming_the_value(tmp_path):
    missing, tabs, listed = tmp_path / "missing.yaml", tmp_path / "tabs.yaml", tmp_path / "list.yaml"
    tabs.write_text("path: .\n\tval: images")  # a tab where YAML allows none
    listed.write_text("- images/train\n- images/val\n")
    with pytest.raises(FileNotFoundError, match=f"^data={re.escape(str(missing))}: no such file"):
        read_data_yaml(missing)
    with pytest.raises(ValueError, match=r"^data=my\.yaml: not a readable YAML file \(while scanning"):
        read_data_yaml(tabs, "my.yaml")
    for check in (read_data_yaml, check_data_splits, lambda path: load_split(path, "val")):
        with pytest.raises(ValueError, match="expected a YAML mapping with path, train, val and names"):
            check(listed)


def test_missing_images_name_the_yaml_and_the_fix_for_training_and_evaluation(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: {{0: cat}}\n")
    fix = f"Fix: correct the path in {data} or add the images."
    with pytest.raises(FileNotFoundError, match=re.escape(fix)):
        resolve_data_yaml(data)
    with pytest.raises(FileNotFoundError, match=f"^data={re.escape(str(data))}: .*{re.escape(fix)}$"):
        check_data_splits(data)
    with pytest.raises(FileNotFoundError, match=re.escape(fix)):
        load_split(data, "val")

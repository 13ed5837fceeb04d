"""A dataset's data YAML (Ultralytics' format), read with one-line errors.

Used by the trainer's start-up check (:func:`attnyolo.engine.trainer.check_data_splits`) and the evaluators
(:mod:`attnyolo.evaluation.ground_truth`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from ultralytics.data.utils import check_det_dataset

from ..errors import first_line
from ..utils.paths import datasets_dir

LOGGER = logging.getLogger("attnyolo")


def shipped_data_yaml(data: str | Path) -> Path | None:
    """AttnYOLO's own dataset YAML that ``data`` names, when ``data`` is not a file that exists.

    ``VOC.yaml`` and ``data/VOC.yaml`` (any case; likewise ``coco.yaml``) mean the YAMLs this project ships, which a
    pip-installed copy carries inside the package: they keep VOC's ``difficult`` flags and COCO's official instances
    JSON, which the evaluators need. A bare name would otherwise reach Ultralytics' own ``VOC.yaml``, which drops the
    difficult objects from the labels, and the official VOC protocol could not be reported.
    """
    path = Path(str(data))
    if path.exists() or path.parent not in (Path("."), Path("data")):
        return None
    return next((f for f in sorted(datasets_dir().glob("*.yaml")) if f.name.lower() == path.name.lower()), None)


def locate_data_yaml(data: str | Path) -> str:
    """``data`` itself, or the shipped YAML it names (:func:`shipped_data_yaml`), saying so in the log."""
    shipped = shipped_data_yaml(data)
    if shipped is None:
        return str(data)
    LOGGER.info(f"data={data}: AttnYOLO's {shipped.name} ({shipped})")
    return str(shipped)


def read_data_yaml(path: str | Path, data: str | Path | None = None) -> dict[str, Any]:
    """A data YAML's own mapping (before Ultralytics resolves it), with one-line errors.

    Args:
        path: The local data YAML.
        data: The value the user gave, for messages (default: ``path``).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a readable YAML file, or not a mapping.
    """
    data = data or path
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data={data}: no such file. Fix: pass the path of a data YAML (e.g. data.yaml).")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"data={data}: not a readable YAML file ({first_line(error)}).") from None
    if not isinstance(raw, dict):
        raise ValueError(f"data={data}: expected a YAML mapping with path, train, val and names.")
    return raw


def resolve_data_yaml(
    path: str | Path, data: str | Path | None = None, split: str = "", download: bool = False
) -> dict[str, Any]:
    """A data YAML resolved as Ultralytics resolves it (``check_det_dataset``), with one-line errors.

    By default nothing is downloaded (``autodownload=False``): a check must not start a multi-GB download because a
    path is misspelt.

    Args:
        path: The local data YAML.
        data: The value the user gave, for messages (default: ``path``).
        split: A split that must be present (``val``), or "" for none.
        download: Let Ultralytics run the YAML's ``download:`` when the images are missing (evaluating a dataset
            whose YAML says how to fetch it, e.g. ``VOC.yaml``).

    Raises:
        FileNotFoundError: Images the YAML names are missing.
        ValueError: A malformed data YAML.
    """
    data = data or path
    try:
        return check_det_dataset(str(path), autodownload=download, split=split)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"data={data}: {first_line(error).rstrip('.')}. Fix: correct the path in {path} or add the images."
        ) from None
    except (SyntaxError, TypeError, ValueError, AssertionError, KeyError) as error:
        raise ValueError(f"data={data}: {first_line(error)}") from None

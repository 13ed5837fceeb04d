"""Model names and where their YAMLs are found: Ultralytics' ``check_yaml`` learns AttnYOLO's ``cfg/`` and names.

Names this module resolves, from any working directory and from an installed wheel alike:

* every file shipped in ``cfg/`` by its bare name (``yolox.yaml``, ``yolov8-attention.yaml``);
* ``<family><scale>-<kind>.yaml`` (``yolov8n-ELA-S.yaml``, classic YOLOv5: ``yolov5s-classic-CoordAtt.yaml``): the
  family's placement YAML with ``attention: <kind>``, written once to Ultralytics' settings directory so the model dict
  saved in checkpoints names its own kind;
* names the YOLOv5 forks use (``yolov5s_Coordinate_attention.yaml``) through :data:`ALIASES`;
* ``yolox-<size>[-<kind>].yaml`` (also ``yolox_s.yaml``, as YOLOX spells it), which choose their scale themselves:
  Ultralytics' scale guess needs a digit in the name (``yolov8s``);
* a YAML file that exists at the path given is read as given (:func:`wrap_yaml_model_load`): Ultralytics renames
  ``yolov5s6.yaml``-style stems to its own ``yolov5s-p6.yaml``, so a user's classic YOLOv5 P6 file built Ultralytics'
  anchor-free model, or failed when given with a folder.

:func:`check_model_source` lets tools fail in one line, before any work, on a model name nothing resolves.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from pathlib import Path

from ultralytics.utils import USER_CONFIG_DIR, YAML
from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

from ..errors import ModelConfigError
from ..layers.registry import kind_names
from ..utils.atomic import write_text_atomic
from ..utils.paths import cfg_dir
from .checkpoints import check_checkpoint_file

# Names users know from YOLOv5 forks -> (placement file stem, kind). The forks' yolov5s_Coordinate_attention.yaml is
# classic (anchor-based) YOLOv5 with CoordAtt after the P3/P4/P5 backbone C3 stages, so the name builds exactly that.
ALIASES: dict[str, tuple[str, str]] = {"yolov5_Coordinate_attention": ("yolov5-classic-attention", "CoordAtt")}

# Model families with per-scale names: '<stem>' is '<prefix><scale><suffix>' (yolov8n, yolov5s-classic).
SCALED_FAMILIES: dict[str, tuple[str, str]] = {
    "yolov5": ("yolov5", ""),
    "yolov5-classic": ("yolov5", "-classic"),
    "yolov8": ("yolov8", ""),
    "yolo11": ("yolo11", ""),
}


def scaled_stem(family: str, scale: str) -> str:
    """The model-name stem of ``family`` at ``scale``: 'yolov8n', 'yolov5s-classic' (for 'yolov5-classic', 's')."""
    prefix, suffix = SCALED_FAMILIES[family]
    return f"{prefix}{scale}{suffix}"


# YOLOX model names: yolox-<size>.yaml and yolox-<size>-<attention kind>.yaml (also with '_', as YOLOX's exps spell
# them). YOLOX's own size names (exps/default/yolox_<size>.py), in zoo order, -> the scale keys of cfg/yolox/yolox.yaml.
YOLOX_SIZE_NAMES: dict[str, str] = {"nano": "n", "tiny": "t", "s": "s", "m": "m", "l": "l", "x": "x"}
# Every size a name may give -> scale key: YOLOX's names and the scale keys themselves (yolox-n.yaml = yolox-nano.yaml).
YOLOX_SIZES = {**YOLOX_SIZE_NAMES, **{scale: scale for scale in YOLOX_SIZE_NAMES.values()}}


_YOLOX_NAME = re.compile(rf"^yolox[-_](?P<size>{'|'.join(map(re.escape, YOLOX_SIZES))})(?:[-_](?P<kind>.+))?$")


def _tasks():
    """Return the ``ultralytics.nn.tasks`` module, the namespace parse_model resolves YAML module names in."""
    return importlib.import_module("ultralytics.nn.tasks")


def yaml_label(d: dict) -> str:
    """Name a model dict for error messages: its YAML file when Ultralytics recorded one."""
    return str(d.get("yaml_file") or "<model dict>")


def yolox_name(name: str | Path) -> tuple[str, str | None] | None:
    """Parse a YOLOX model name: 'yolox-nano-ELA-S.yaml' -> ('n', 'ELA-S'), 'yolox_s.yaml' -> ('s', None)."""
    m = _YOLOX_NAME.match(Path(str(name)).stem)
    return (YOLOX_SIZES[m["size"]], m["kind"]) if m else None


def with_yolox_scale(d: dict) -> dict:
    """Set the scale of a YOLOX model dict from its file name (yolox-s.yaml -> 's') when Ultralytics found none.

    Ultralytics guesses the scale only from names like yolov8s (a digit before the letter), so 'yolox-s' would fall
    back to the first scale with a warning.
    """
    if d.get("scale") or not d.get("scales"):
        return d
    parsed = yolox_name(d.get("yaml_file") or "")
    if parsed is None or parsed[0] not in d["scales"]:
        return d
    return {**d, "scale": parsed[0]}


def _yolox_base(name: str) -> list[Path]:
    """cfg/yolox/yolox.yaml for a plain YOLOX size name (yolox-s.yaml); [] for anything else."""
    parsed = yolox_name(name)
    base = cfg_dir() / "yolox" / "yolox.yaml"
    return [base] if parsed and parsed[1] is None and base.is_file() else []


def _variant_source(name: str) -> tuple[Path, str] | None:
    """Map a variant file name to (placement YAML, kind).

    'yolov8-ELA-S.yaml' -> (cfg/yolov8/yolov8-attention.yaml, 'ELA-S'); aliases such as
    'yolov5_Coordinate_attention.yaml' likewise. Scaled names (yolov8n-...) are left to Ultralytics, which retries
    with the unscaled name.
    """
    stem = Path(name).stem
    yolox = yolox_name(stem)
    if stem in ALIASES:
        family_stem, kind = ALIASES[stem]
    elif yolox and yolox[1]:
        family_stem, kind = "yolox-attention", yolox[1]
        if kind not in kind_names():
            close = difflib.get_close_matches(kind, kind_names(), n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ModelConfigError(
                f"{name}: {kind!r} is not an attention kind.{hint} YOLOX variants are named "
                f"yolox-<nano|tiny|s|m|l|x>-<kind>.yaml with kind one of: {', '.join(kind_names())}."
            )
    else:
        kind = next((k for k in sorted(kind_names(), key=len, reverse=True) if stem.endswith(f"-{k}")), None)
        if kind is None or len(stem) == len(kind) + 1:
            return None
        family_stem = f"{stem[: -len(kind) - 1]}-attention"  # yolov8-SE -> yolov8, yolov5-classic-SE -> ...
    found = sorted(cfg_dir().rglob(f"{family_stem}.yaml"))
    return (found[0], kind) if found else None


def _materialize_variant(name: str) -> list[Path]:
    """Write the placement YAML with its ``attention:`` key set to the requested kind.

    The model dict Ultralytics loads (and saves into checkpoints) then names its own layer kind. Written atomically:
    DDP ranks may race here.
    """
    source = _variant_source(name)
    if source is None:
        return []
    placement, kind = source
    text, n = re.subn(r"(?m)^attention:[^\n#]*", f"attention: {kind} ", placement.read_text(encoding="utf-8"), count=1)
    if n != 1:
        raise ModelConfigError(f"{placement}: placement YAML has no top-level `attention:` key to set to {kind}.")
    out = Path(USER_CONFIG_DIR) / "attnyolo-cfg" / Path(name).name
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, f"# Generated by attnyolo from {placement.name} with attention: {kind}\n{text}")
    return [out]


def wrap_check_yaml(original):
    """Return a check_yaml that also finds AttnYOLO's shipped model YAMLs (cfg/) by bare file name."""

    @functools.wraps(original)
    def check_yaml(file, suffix=(".yaml", ".yml"), hard=True):
        """Resolve ``file`` locally first, then in AttnYOLO's cfg/, then the way Ultralytics does."""
        path = Path(str(file))
        if not path.exists() and path.parent == Path("."):
            found = sorted(cfg_dir().rglob(path.name)) or _yolox_base(path.name) or _materialize_variant(path.name)
            if found:
                return str(found[0])
        return original(file, suffix=suffix, hard=hard)

    check_yaml._attnyolo_original = original
    return check_yaml


# The stems Ultralytics' yaml_model_load renames to its P6 models (yolov5s6 -> yolov5s-p6): digits, a scale, 6.
_P6_STEM = re.compile(r"\d+[nslmx]6(.+)?$")


def wrap_yaml_model_load(original):
    """Return a yaml_model_load that reads a model YAML file existing at the given path as given.

    Ultralytics' ``yaml_model_load`` renames the stems ``yolov5<s>6``/``yolov8<s>6`` to its ``-p6`` models before
    looking for the file, so ``DetectionModel("yolov5s6.yaml")`` built Ultralytics' anchor-free YOLOv5s-P6 even with
    the user's classic ``yolov5s6.yaml`` in the working directory, and ``my/yolov5s6.yaml`` failed
    ("my/yolov5-p6.yaml does not exist"). For a file that exists, the dict is what Ultralytics makes of any other file:
    the YAML, ``scale`` guessed from the file name, ``yaml_file`` the path. Every other name (``yolov8n.yaml``, this
    project's variants, a user's file of another stem) goes to Ultralytics unchanged.
    """

    @functools.wraps(original)
    def yaml_model_load(path):
        """Load a model YAML as Ultralytics does, reading an existing file at ``path`` as given."""
        given = Path(str(path))
        renamed = _P6_STEM.search(given.stem)  # the one rename Ultralytics applies before looking for the file
        if not renamed or given.suffix.lower() not in {".yaml", ".yml"} or not given.is_file():
            return original(path)
        d = YAML.load(given)
        d["scale"] = _tasks().guess_model_scale(given)
        d["yaml_file"] = str(given)
        return d

    yaml_model_load._attnyolo_original = original
    return yaml_model_load


def model_names() -> list[str]:
    """Every model name this project resolves: the cfg/ files, and <family><scale>[-<kind>].yaml for each family."""
    names = {p.name for p in cfg_dir().rglob("*.yaml")}
    scaled = [scaled_stem(family, s) for family in SCALED_FAMILIES for s in "nsmlx"]
    scaled += [f"yolox-{s}" for s in YOLOX_SIZE_NAMES]
    names.update(f"{stem}{'-' + k if k else ''}.yaml" for stem in scaled for k in ("", *kind_names()))
    return sorted(names)


def check_model_source(model: str | Path, key: str = "model", build: bool = False) -> None:
    """Fail with one line, before any work starts, if ``model`` names no checkpoint or model YAML that exists.

    A ``.pt`` must be an existing file or a stock Ultralytics weight name (downloaded by Ultralytics); anything else
    must load as a model YAML the way Ultralytics loads it (a path, a stock Ultralytics name, or one of this
    project's names such as ``yolo11s-ELA-S.yaml``).

    Args:
        model: The model argument as the user gave it.
        key: The argument's name, for the message (``model``, ``models``).
        build: Also build a YAML model once, so a bad row fails now (a tool that trains several models in a row
            checks them all before the first one trains).

    Raises:
        FileNotFoundError: Naming the value, close matches and the fix.
        ModelConfigError: With ``build``, a row that cannot be built.
    """
    text = str(model)
    if text.endswith(".pt"):
        # Stock weights (yolov8n.pt, ...) are Ultralytics' to download; the download path stays open for users online.
        if text not in GITHUB_ASSETS_NAMES:
            check_checkpoint_file(text, key)
        return
    try:
        _tasks().yaml_model_load(text)
        if build:
            _tasks().DetectionModel(text, verbose=False)  # a bad row raises ModelConfigError naming file and row
    except FileNotFoundError:
        close = difflib.get_close_matches(Path(text).name, model_names(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FileNotFoundError(
            f"{key}: {text} is neither a file nor a model name Ultralytics or this project knows.{hint} Fix: pass a "
            "model YAML path or a name such as yolov8n.yaml or yolov8n-CoordAtt.yaml (<family><scale>-<kind>.yaml)."
        ) from None

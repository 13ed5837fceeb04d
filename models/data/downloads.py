"""Download-and-prepare steps for the real datasets (COCO 2017, PASCAL VOC 2007+2012).

They run from the ``download:`` block of data/coco.yaml and data/VOC.yaml the first time Ultralytics does not find
the images. Both end in the same place as ``tools/convert.py``: the archives are unpacked and handed to
:func:`attnyolo.data.convert.convert_dataset`, which writes YOLO labels and keeps the original annotations (COCO
instances JSON; VOC XML with ``difficult`` flags) for the evaluators. Nothing here runs in tests: the machines that
run them have no internet; the conversion itself is tested on small generated folders.
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.utils.downloads import download

from .convert import convert_dataset

# COCO 2017 from the COCO project's own servers.
COCO_URLS = (
    "http://images.cocodataset.org/zips/train2017.zip",  # 118,287 images, 18 GB
    "http://images.cocodataset.org/zips/val2017.zip",  # 5,000 images, 1 GB
    "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",  # instances_{train,val}2017.json
)
# PASCAL VOC 2007 + 2012 (the devkit folders, XML annotations with `difficult`), as mirrored by Ultralytics because
# the original host is often unreachable.
VOC_URLS = (
    "https://github.com/ultralytics/assets/releases/download/v0.0.0/VOCtrainval_06-Nov-2007.zip",
    "https://github.com/ultralytics/assets/releases/download/v0.0.0/VOCtest_06-Nov-2007.zip",
    "https://github.com/ultralytics/assets/releases/download/v0.0.0/VOCtrainval_11-May-2012.zip",
)


def _download(urls, folder: Path) -> None:
    """Fetch and unzip ``urls`` into ``folder`` with Ultralytics' downloader (retries, progress, unzip)."""
    folder.mkdir(parents=True, exist_ok=True)
    download(list(urls), dir=folder, threads=3)


def prepare_coco(root: str | Path) -> Path:
    """Download COCO 2017 into ``root/raw`` and write the training layout into ``root``; return root/data.yaml."""
    root = Path(root)
    _download(COCO_URLS, root / "raw")
    return convert_dataset(root / "raw", root)


def prepare_voc(root: str | Path) -> Path:
    """Download VOC2007+2012 into ``root/raw`` and write the training layout into ``root``; return root/data.yaml.

    train = VOC2007 trainval + VOC2012 trainval (16,551 images), val = VOC2007 test (4,952 images). Difficult
    objects stay in the XML for the evaluator (the devkit ignores them) instead of being dropped as in Ultralytics'
    own VOC.yaml.
    """
    root = Path(root)
    _download(VOC_URLS, root / "raw")
    devkit = next((p for p in (root / "raw").rglob("VOCdevkit") if p.is_dir()), root / "raw")
    return convert_dataset(devkit, root)

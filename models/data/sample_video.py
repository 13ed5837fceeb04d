"""The sample dataset's clip: shapes moving over a photo, written as mp4v and read back, and its ground truth.

``attnyolo predict`` and ``attnyolo track`` on a video are tested and demonstrated with it
(``data/sample/sample.mp4``, 3 s at 10 fps, 320 x 240); :func:`sample_video_truth` knows every frame's objects.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..utils.atomic import atomic_path
from .shapes import (
    CLASS_NAMES,
    SIZE_RANGE,
    SampleObject,
    load_backgrounds,
    random_background,
    random_texture,
    shape_polygon,
    visible_object,
)

VIDEO_SIZE = (320, 240)  # width, height; mp4v wants even sides
VIDEO_FPS = 10
VIDEO_SECONDS = 3


def count_video_frames(path: str | Path) -> int:
    """Number of frames OpenCV can decode from a video (by reading them, not trusting the container header).

    Args:
        path (str | Path): video file.

    Returns:
        (int): decoded frames; 0 when the file cannot be opened.
    """
    cap = cv2.VideoCapture(str(path))
    frames = 0
    try:
        while cap.isOpened():
            ok, _ = cap.read()
            if not ok:
                break
            frames += 1
    finally:
        cap.release()
    return frames


def write_sample_video(
    path: str | Path, seed: int = 0, photos: list[np.ndarray] | None = None, size: tuple[int, int] = VIDEO_SIZE
) -> int:
    """Write a short mp4 of shapes moving over a still background and check that OpenCV can read it back.

    Args:
        path (str | Path): output ``.mp4`` file.
        seed (int): random seed.
        photos (list[np.ndarray] | None): background photos; loaded from Ultralytics' assets when None.
        size (tuple[int, int]): frame ``(width, height)``.

    Returns:
        (int): number of frames decoded back from the written file.

    Raises:
        RuntimeError: if this OpenCV build cannot write or read back mp4v video.
    """
    width, height = size
    with atomic_path(path, f"tmp{Path(path).suffix}") as tmp:  # the container is chosen by the file's extension
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV could not open {tmp} for writing with the mp4v codec; is FFMPEG support built?")
        try:
            for frame, _ in _video_frames(seed, photos, size):
                writer.write(frame)
        finally:
            writer.release()
    frames = count_video_frames(path)
    if frames == 0:
        raise RuntimeError(f"OpenCV wrote {path} but cannot read any frame back; check its FFMPEG support.")
    return frames


def sample_video_truth(
    seed: int = 0, photos: list[np.ndarray] | None = None, size: tuple[int, int] = VIDEO_SIZE
) -> list[list[SampleObject | None]]:
    """The true objects of every frame of the sample video :func:`write_sample_video` writes with the same arguments.

    Each moving shape is one object for the whole video (its index in a frame's list is its identity), boxed by its
    visible pixels as in the images (shapes pasted later cover earlier ones), with the images' difficulty rule.

    Args:
        seed (int): random seed, as given to :func:`write_sample_video`.
        photos (list[np.ndarray] | None): background photos; loaded from Ultralytics' assets when None.
        size (tuple[int, int]): frame ``(width, height)``.

    Returns:
        (list[list[SampleObject | None]]): per frame (0-based), per shape, its object; None while wholly covered.
    """
    return [objects for _, objects in _video_frames(seed, photos, size)]


def _video_frames(seed: int, photos: list[np.ndarray] | None, size: tuple[int, int]):
    """Yield each frame of the sample video and its objects (see :func:`sample_video_truth`)."""
    rng = np.random.default_rng([seed, 1_000_000])  # a stream apart from the per-image ones
    photos = photos if photos is not None else load_backgrounds()
    width, height = size
    background = random_background(rng, photos, width, height)
    short = min(width, height)
    sprites = []
    for cls in range(len(CLASS_NAMES)):
        pts = shape_polygon(rng, cls, rng.uniform(*SIZE_RANGE) * short)
        half = np.abs(pts).max(0)
        start = rng.uniform(half, (width, height) - half)
        velocity = rng.uniform(-1, 1, 2) * short * 0.4 / VIDEO_FPS  # up to 40% of the frame per second
        sprites.append((cls, pts, half, start, velocity, random_texture(rng, width, height)))
    for i in range(VIDEO_FPS * VIDEO_SECONDS):
        frame = background.copy()
        masks = []
        for _cls, pts, half, start, velocity, texture in sprites:
            # Bounce off the borders: fold the unbounded linear position back into the allowed range.
            lo, span = half, (width, height) - 2 * half
            pos = np.abs((start - lo + velocity * i) % (2 * span) - span)
            pos = lo + span - pos
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(pts + pos).astype(np.int32)], 1)
            masks.append(mask.astype(bool))
            frame[masks[-1]] = texture[masks[-1]]
        covered = np.zeros((height, width), bool)  # by the shapes pasted after the one being boxed
        objects = []
        for (cls, *_), mask in reversed(list(zip(sprites, masks))):
            objects.insert(0, visible_object(cls, mask & ~covered, int(mask.sum()), short))
            covered |= mask
        yield frame, objects

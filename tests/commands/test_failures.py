"""Every failure a user can meet ends in one line and exit 1, and leaves no corrupt or half-written file.

The tools run in-process through the same entry point as the command line (``attnyolo.commands.run``). A read-only
folder, a full disk, a missing camera and a dropped stream are simulated at the system call the real one would fail
(root ignores file permissions here, and a test must not need a camera): ``os.mkdir``, the atomic rename, and
OpenCV's ``VideoCapture``.
"""

import errno
import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from attnyolo.commands import run
from attnyolo.utils import atomic
from attnyolo.utils.cli import os_failure_message

ANSI = re.compile(r"\x1b\[")


def one_line_failure(capsys, command, argv, code=1):
    """Run a tool; return its single stderr error line (after asserting exit status and shape)."""
    with pytest.raises(SystemExit) as done:
        run(command, argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert done.value.code == code, err[-3000:]
    assert len(errors) == 1 and "Traceback" not in err and not ANSI.search(errors[0]), err[-3000:]
    return errors[0]


@pytest.fixture
def read_only(monkeypatch, tmp_path):
    """A folder in which nothing can be created, as on a read-only mount (EROFS)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(folder)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    return folder


@pytest.fixture
def disk_full(monkeypatch):
    """Make every atomic write of a file named ``name`` fail as on a full disk (ENOSPC); returns a setter."""
    names = set()
    real = atomic.replace_atomically

    def replace(tmp, final, durable=True):
        if os.path.basename(final) in names:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real(tmp, final, durable)

    monkeypatch.setattr(atomic, "replace_atomically", replace)
    return names.add


# ------------------------------------------------------------------------------------------ read-only, disk full
def test_val_into_a_read_only_folder(read_only, perfect_predictions, sample_data, capsys):
    argv = [f"predictions={perfect_predictions}", f"data={sample_data}", f"project={read_only}"]
    line = one_line_failure(capsys, "val", argv)
    assert line.startswith(f"error: cannot write {read_only}/exp") and "the file system is read-only (EROFS)" in line
    assert "Fix: write elsewhere with project=" in line


def test_predict_into_a_read_only_folder(read_only, tiny_checkpoint, sample_data, capsys):
    image = next((sample_data.parent / "images" / "val").glob("*.jpg"))
    line = one_line_failure(capsys, "predict", [f"model={tiny_checkpoint}", f"source={image}", f"project={read_only}"])
    assert line.startswith(f"error: cannot write {read_only}") and "(EROFS)" in line


def test_make_sample_data_into_a_read_only_folder(read_only, capsys):
    line = one_line_failure(capsys, "make_sample_data", [f"out={read_only / 'sample'}", "n_train=1", "n_val=1"])
    assert line.startswith(f"error: cannot write {read_only / 'sample'}") and "read-only" in line


def test_train_into_a_read_only_folder(read_only, sample_data, capsys):
    argv = ["model=yolov8n.yaml", f"data={sample_data}", f"project={read_only}", "epochs=1", "imgsz=32"]
    line = one_line_failure(capsys, "train", argv)
    assert line.startswith(f"error: cannot write {read_only}") and "(EROFS)" in line


def test_full_disk_while_writing_metrics_keeps_the_previous_file(
    disk_full, perfect_predictions, sample_data, tmp_path, capsys
):
    argv = [f"predictions={perfect_predictions}", f"data={sample_data}", f"project={tmp_path}", "exist_ok=True"]
    run("val", argv)
    run_dir = tmp_path / "exp"
    before = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "predictions.json")}
    capsys.readouterr()
    disk_full("metrics.json")
    line = one_line_failure(capsys, "val", argv)
    # The message names the file the user has, not the temporary one that failed.
    assert line == (
        f"error: cannot write {run_dir / 'metrics.json'}: the disk is full (ENOSPC). Fix: free some space, or write "
        "elsewhere with project= (out= for data tools)."
    )
    assert (run_dir / "metrics.json").read_bytes() == before["metrics.json"]
    assert json.loads((run_dir / "predictions.json").read_text()) == json.loads(before["predictions.json"])
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "metrics.json"
    dead = tmp_path / ".metrics.json.999999999.tmp"  # no such process: it was killed mid-write
    alive = tmp_path / f".metrics.json.{os.getppid()}.tmp"  # a process that runs: maybe writing right now
    dead.write_text('{"half": ')
    alive.write_text("{")
    atomic.write_json_atomic(target, {"AP": 0.5})
    assert json.loads(target.read_text()) == {"AP": 0.5}
    assert not dead.exists() and alive.exists()


# ---------------------------------------------------------------------------------------- settings, bad values
@pytest.mark.parametrize(
    ("command", "arg", "expected"),
    [
        ("train", "batch=-5", "batch=-5 is not a batch size. Fix: give a whole number >= 1, -1 (AutoBatch"),
        ("train", "batch=0", "batch=0 is not a batch size"),
        ("predict", "batch=-5", "batch=-5 is not a batch size. Fix: give a whole number >= 1, e.g. batch=16."),
        ("predict", "batch=-1", "batch=-1 is not a batch size"),
        ("val", "imgsz=0", "imgsz=0 is not an image size"),
        ("train", "imgsz=[640, 480]", "imgsz=[640, 480] is not an image size. Fix: give a whole number >= 32 in"),
        ("predict", "conf=1.5", "conf=1.5 must be a number from 0 to 1"),
        ("val", "iou=-0.1", "iou=-0.1 must be a number from 0 to 1"),
        ("train", "workers=-1", "workers=-1 must be a whole number >= 0"),
        ("predict", "imgsz=big", "imgsz='big' is not an image size"),
    ],
)
def test_settings_are_checked_before_any_work(command, arg, expected, tiny_checkpoint, sample_data, tmp_path, capsys):
    argv = {
        "train": ["model=yolov8n.yaml", f"data={sample_data}"],
        "val": [f"model={tiny_checkpoint}", f"data={sample_data}"],
        "predict": [f"model={tiny_checkpoint}", f"source={sample_data.parent / 'images' / 'val'}"],
    }[command]
    line = one_line_failure(capsys, command, [*argv, arg, f"project={tmp_path / 'runs'}"])
    assert line.startswith(f"error: {expected}")
    assert not (tmp_path / "runs").exists()  # nothing started


def test_a_missing_val_folder_fails_before_training(sample_data, tmp_path, capsys):
    data = tmp_path / "data.yaml"
    data.write_text(
        f"path: {tmp_path}\ntrain: {sample_data.parent / 'images' / 'train'}\nval: images/val\nnames: {{0: a, 1: b}}\n"
    )
    line = one_line_failure(capsys, "train", ["model=yolov8n.yaml", f"data={data}", f"project={tmp_path / 'runs'}"])
    assert f"data={data}: " in line and str(tmp_path / "images" / "val") in line and "Fix:" in line
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------- cameras and streams
REAL_VIDEO_CAPTURE = cv2.VideoCapture


class FakeCamera:
    """Stands in for cv2.VideoCapture: a camera that delivers ``frames`` frames, then is unplugged."""

    frames = 0  # 0: there is no camera at all

    def __new__(cls, source, *args):
        if isinstance(source, str) and os.path.isfile(source):  # a video file, e.g. the annotated output: read it
            return REAL_VIDEO_CAPTURE(source, *args)
        return super().__new__(cls)

    def __init__(self, source, *args):
        self.left = type(self).frames
        self.opened = self.left > 0

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return self.opened

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48, cv2.CAP_PROP_FPS: 1000}.get(prop, 0)

    def grab(self):
        self.left -= 1
        return self.left >= 0

    def retrieve(self):
        if self.left < 0:
            return False, None
        return True, np.full((48, 64, 3), 100, np.uint8)

    def read(self):
        return self.retrieve() if self.grab() else (False, None)

    def open(self, source):
        self.opened = False  # reconnecting fails: the camera is gone
        return False

    def release(self):
        self.opened = False


def test_no_camera_is_one_line(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(FakeCamera, "frames", 0)
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    line = one_line_failure(capsys, "predict", [f"model={tiny_checkpoint}", "source=0", f"project={tmp_path}"])
    assert line.startswith("error: source=0: camera 0 cannot be opened (no camera with that index")


def test_a_stream_that_drops_says_so_after_saving_what_it_got(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(FakeCamera, "frames", 12)
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    argv = [f"model={tiny_checkpoint}", "source=1", f"project={tmp_path}", "save_json=True", "imgsz=64"]
    line = one_line_failure(capsys, "predict", argv)
    match = re.fullmatch(
        r"error: source=1: the stream stopped after (\d+) frames \(connection lost or camera "
        r"disconnected\); the \1 frames were written to (.+)\.",
        line,
    )
    assert match, line
    saved = json.loads((tmp_path / os.path.basename(match[2]) / "detections.json").read_text())
    assert len(saved) == int(match[1]) >= 1


def test_a_tracked_stream_that_drops_keeps_the_tracks_of_the_frames_it_got(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(FakeCamera, "frames", 12)
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    line = one_line_failure(
        capsys, "track", [f"model={tiny_checkpoint}", "source=1", f"project={tmp_path}", "imgsz=64"]
    )
    match = re.fullmatch(
        r"error: source=1: the stream stopped after (\d+) frames .*; the \1 frames were written to (.+)\.", line
    )
    assert match, line
    run = tmp_path / os.path.basename(match[2])
    assert len(json.loads((run / "tracks.json").read_text())) == int(match[1]) >= 1
    assert (run / "mot" / "1.txt").is_file()  # MOTChallenge text of the stream, named after the camera index


def test_a_video_that_ends_early_says_how_many_frames_were_written(tiny_checkpoint, tmp_path, capsys):
    # An MJPG AVI whose second half is missing: its header still says 30 frames, OpenCV decodes 18.
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    video.write_bytes(video.read_bytes()[: int(video.stat().st_size * 0.6)])
    decodable = 0
    cap = cv2.VideoCapture(str(video))
    while cap.read()[0]:
        decodable += 1
    assert 0 < decodable < 30

    with pytest.warns(UserWarning) as caught:
        run("predict", [f"model={tiny_checkpoint}", f"source={video}", f"project={tmp_path}", "imgsz=64"])
    [warning] = [str(w.message) for w in caught if str(w.message).startswith("video ")]
    assert re.fullmatch(
        rf"video {re.escape(str(video))} ended after {decodable} of its 30 frames \(the rest cannot be "
        rf"decoded: damaged or truncated file\); {decodable} frames were written to .+\.",
        warning,
    )
    assert f"{decodable} image(s)/frame(s)" in capsys.readouterr().out


def test_predict_reports_start_up_and_steady_rate(tiny_checkpoint, sample_data, tmp_path, capsys):
    run(
        "predict",
        [f"model={tiny_checkpoint}", f"source={sample_data.parent / 'images' / 'val'}", f"project={tmp_path}"],
    )
    out = capsys.readouterr().out
    assert re.search(
        r"12 image\(s\)/frame\(s\), \d+ detections; start-up \d+\.\d\d s \(model, predictor, first frame\), then "
        r"\d+\.\d frames/s \(\d+\.\d frames/s overall\)",
        out,
    ), out


def test_error_lines_carry_no_colour_codes(capsys):
    from attnyolo.utils.cli import run_tool

    def main(argv):  # Ultralytics colours parts of its messages (colorstr) and adds emoji
        raise FileNotFoundError("\x1b[34m\x1b[1mval: \x1b[0mDataset 'x.yaml' images not found ⚠️, missing path 'y'")

    with pytest.raises(SystemExit) as done:
        run_tool(main, [])
    assert done.value.code == 1
    assert capsys.readouterr().err == "error: val: Dataset 'x.yaml' images not found , missing path 'y'\n"


def _failing(error):
    def main(argv):
        raise error

    return main


def test_type_and_key_errors_say_they_may_be_a_bug_and_how_to_see_the_traceback(capsys, monkeypatch):
    from attnyolo.utils.cli import run_tool

    monkeypatch.delenv("ATTNYOLO_DEBUG", raising=False)
    for error, text in ((TypeError("unhashable type: 'list'"), "unhashable type: 'list'"), (KeyError("nc"), "nc")):
        with pytest.raises(SystemExit) as done:
            run_tool(_failing(error), [])
        assert done.value.code == 1
        assert capsys.readouterr().err == (
            f"error: {text} ({type(error).__name__}; if the input is right, this is a bug: ATTNYOLO_DEBUG=1 shows the "
            "traceback).\n"
        )
    # errors a person can fix read as before, without the hint
    with pytest.raises(SystemExit):
        run_tool(_failing(ValueError("imgsz=7 is not an image size.")), [])
    assert capsys.readouterr().err == "error: imgsz=7 is not an image size.\n"


@pytest.mark.parametrize("value", ["1", "true"])
def test_debug_switch_keeps_the_traceback_of_every_failure(value, monkeypatch):
    from attnyolo.errors import CheckpointError
    from attnyolo.utils.cli import run_tool

    monkeypatch.setenv("ATTNYOLO_DEBUG", value)

    def main(argv):
        try:
            raise RuntimeError("invalid load key, 'x'")  # what torch says about a file that is not a checkpoint
        except RuntimeError:
            raise CheckpointError("model=x.pt is not a loadable checkpoint") from None

    with pytest.raises(CheckpointError) as raised:
        run_tool(main, [])
    # the error the one-line message replaced is shown in the traceback again
    assert not raised.value.__suppress_context__ and isinstance(raised.value.__context__, RuntimeError)
    with pytest.raises(FileNotFoundError):
        run_tool(_failing(FileNotFoundError("data=x.yaml does not exist")), [])
    with pytest.raises(KeyError):
        run_tool(_failing(KeyError("nc")), [])
    with pytest.raises(OSError):
        run_tool(_failing(OSError(errno.ENOSPC, "No space left on device", "out.json")), [])


def test_debug_switch_off_values_keep_one_line_messages(capsys, monkeypatch):
    from attnyolo.utils.cli import run_tool

    for value in ("0", "false", ""):
        monkeypatch.setenv("ATTNYOLO_DEBUG", value)
        with pytest.raises(SystemExit):
            run_tool(_failing(FileNotFoundError("data=x.yaml does not exist")), [])
        assert capsys.readouterr().err == "error: data=x.yaml does not exist\n"


# ----------------------------------------------------------------------------------- annotated output, full disk
def test_predict_on_a_full_disk_fails_naming_the_image_it_could_not_write(
    disk_full, tiny_checkpoint, sample_data, tmp_path, capsys, monkeypatch
):
    images = sorted((sample_data.parent / "images" / "val").glob("*.jpg"))
    victim = images[1].name
    disk_full(victim)  # our atomic write of that image fails with ENOSPC
    real_imwrite = cv2.imwrite  # and so would OpenCV's imwrite, which only returns False
    monkeypatch.setattr(
        cv2, "imwrite", lambda f, *a, **k: False if str(f).endswith(victim) else real_imwrite(f, *a, **k)
    )
    argv = [f"model={tiny_checkpoint}", f"source={images[0].parent}", f"project={tmp_path}", "imgsz=64"]
    line = one_line_failure(capsys, "predict", argv)
    assert line == (
        f"error: cannot write {tmp_path / 'predict' / victim}: the disk is full (ENOSPC). Fix: free some space, or "
        "write elsewhere with project= (out= for data tools)."
    )
    written = sorted(p.name for p in (tmp_path / "predict").iterdir())
    assert written == [images[0].name]  # the image before it, complete; no temporary file


class DroppingWriter:
    """A cv2.VideoWriter that, like OpenCV's on a full disk, writes the first frame and then drops the rest silently."""

    def __init__(self, *args, **kwargs):
        self.writer, self.frames = REAL_VIDEO_WRITER(*args, **kwargs), 0

    def write(self, image):
        self.frames += 1
        if self.frames == 1:
            self.writer.write(image)

    def release(self):
        self.writer.release()


REAL_VIDEO_WRITER = cv2.VideoWriter


def test_a_video_the_writer_could_not_finish_is_one_line_and_removed(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 50 * i, np.uint8))
    writer.release()
    monkeypatch.setattr(cv2, "VideoWriter", DroppingWriter)
    out = tmp_path / "out"
    line = one_line_failure(capsys, "predict", [f"model={tiny_checkpoint}", f"source={video}", f"project={out}"])
    # The probe next to it writes fine here, so the cause is reported as an input/output error.
    assert line.startswith(f"error: cannot write {out / 'predict' / 'clip.avi'}: an input/output error")
    assert list((out / "predict").iterdir()) == []  # the truncated video is removed


def test_the_cause_of_a_failed_write_is_found_by_a_probe(tmp_path, monkeypatch):
    target = tmp_path / "clip.avi"
    assert atomic.write_failure(target).errno == errno.EIO  # the folder takes writes: cause unknown

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    error = atomic.write_failure(target)
    assert (error.errno, error.filename) == (errno.ENOSPC, str(target)) and list(tmp_path.iterdir()) == []


def test_a_write_that_fails_without_a_file_name_is_named_after_its_target(tmp_path, monkeypatch):
    def write_text(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write() or flush(): no file name

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OSError) as failed:
        atomic.write_text_atomic(tmp_path / "metrics.json", "{}")
    assert os_failure_message(failed.value).startswith(f"cannot write {tmp_path / 'metrics.json'}: the disk is full")


def test_a_truncated_video_source_is_refused_without_ffmpegs_own_line(tmp_path, monkeypatch):
    from attnyolo.engine.predict import FFMPEG_LOGLEVEL_ENV, check_source

    video = tmp_path / "cut.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))  # no moov atom: FFmpeg logs "moov atom not found"
    monkeypatch.delenv(FFMPEG_LOGLEVEL_ENV, raising=False)
    with pytest.raises(ValueError, match="cannot be opened or has no frames"):
        check_source(video)
    # FFmpeg reads its log level when OpenCV first uses it: set before the probe, the tools' first video open.
    assert os.environ[FFMPEG_LOGLEVEL_ENV] == "-8"


def test_a_checkpoint_write_that_fails_without_a_file_name_names_the_checkpoint(tmp_path):
    from types import SimpleNamespace

    from attnyolo.integration.checkpoints import save_model_atomically

    trainer = SimpleNamespace(last=tmp_path / "last.pt", best=tmp_path / "best.pt")

    def save():  # Ultralytics writes last.pt with Path.write_bytes; the disk fills up after half
        Path(trainer.last).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as failed:
        save_model_atomically(trainer, save)
    assert failed.value.filename == str(tmp_path / "last.pt") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("where", "named"), [("save", True), ("get_dataset", False)])
def test_trainer_set_up_names_args_yaml_only_for_a_failed_args_yaml_write(monkeypatch, tmp_path, where, named):
    # BaseTrainer.__init__ writes <save_dir>/args.yaml and also prepares the dataset (which may download and unzip):
    # only the first failure is about args.yaml.
    import errno

    from ultralytics.models.yolo.detect import DetectionTrainer

    from attnyolo.engine.trainer import AttnDetectionTrainer

    def save():  # named like Ultralytics' YAML saver
        raise OSError(errno.ENOSPC, "No space left on device")

    def get_dataset():
        raise OSError(errno.ENOSPC, "No space left on device")

    def fails(self, *args, **kwargs):
        self.save_dir = tmp_path / "run"
        {"save": save, "get_dataset": get_dataset}[where]()

    monkeypatch.setattr(DetectionTrainer, "__init__", fails)
    with pytest.raises(OSError) as error:
        AttnDetectionTrainer()
    assert (error.value.filename == str(tmp_path / "run" / "args.yaml")) is named


def test_a_damaged_jpeg_source_is_one_line_without_libjpegs_own(tmp_path, capfd):
    # libjpeg writes "Premature end of JPEG file" straight to file descriptor 2 for a file cut short.
    import cv2
    import numpy as np

    from attnyolo.engine.predict import check_source

    whole = tmp_path / "whole.jpg"
    cv2.imwrite(str(whole), np.full((64, 64, 3), 127, np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(ValueError, match="cannot be read"):
        check_source(str(cut))
    assert "JPEG" not in capfd.readouterr().err
    assert check_source(str(whole)) == str(whole)  # a whole image passes, and stderr is back
    print("stderr still works", file=sys.stderr)
    assert "stderr still works" in capfd.readouterr().err

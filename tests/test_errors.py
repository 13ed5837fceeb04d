"""attnyolo.errors.first_line: how one-line messages restate errors from torch, pickle and Ultralytics."""

from attnyolo.errors import first_line


def test_first_line_keeps_the_text_and_drops_decoration():
    # inner quotes stay (the leading one used to be stripped: "utf-8' codec ...")
    error = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    assert first_line(error) == "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    assert first_line(KeyError("model")) == "model"  # KeyError's own text, without str()'s quotes
    assert first_line(RuntimeError("'quoted whole'")) == "quoted whole"
    # Ultralytics colours and emoji, and everything after the first line
    coloured = FileNotFoundError("\x1b[34m\x1b[1mval: \x1b[0mimages not found ⚠️\nmissing path 'y'")
    assert first_line(coloured) == "val: images not found"
    assert first_line(ValueError("")) == "ValueError"

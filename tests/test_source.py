"""Reading a spec file: its text, and the lines errors quote."""

from __future__ import annotations

import pytest

from compiler.errors import PplError, Source


def test_a_spec_that_is_not_utf8_is_an_error_naming_the_byte_and_where_it_is(tmp_path):
    path = tmp_path / "latin1.ppl"
    path.write_bytes("latent a ~ Normal(0, 1)\n# café\n".encode("latin-1"))
    with pytest.raises(PplError) as caught:
        Source.from_path(path)
    assert caught.value.message == f"cannot read spec {path}: not UTF-8 text (byte 0xe9 on line 2, column 6)"
    assert caught.value.kind == "spec"


def test_a_missing_spec_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(PplError) as caught:
        Source.from_path(tmp_path / "absent.ppl")
    assert caught.value.message == f"cannot read spec {tmp_path / 'absent.ppl'}: No such file or directory"


def test_a_byte_order_mark_is_not_part_of_the_spec(tmp_path):
    path = tmp_path / "bom.ppl"
    path.write_bytes(b"\xef\xbb\xbflatent a ~ Normal(0, 1)\n")
    assert Source.from_path(path).text == "latent a ~ Normal(0, 1)\n"


def test_lines_are_counted_at_newlines_only_as_the_parser_counts_them():
    source = Source("f.ppl", "data x: real\x0c\r\nlatent a ~ Normal(0, 1)\x0b\nlet b = 1")
    assert source.line(2) == "latent a ~ Normal(0, 1)\x0b"
    assert source.line(3) == "let b = 1"

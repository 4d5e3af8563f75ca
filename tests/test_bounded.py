"""The one number parser (vmsched.bounded) and the one-line error text (vmsched.errors)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmsched import bounded
from vmsched.bounded import MAX_MEMORY_MB, MAX_TIME, NumberError
from vmsched.errors import MAX_TEXT, describe, line, show, where_in_text


@pytest.mark.parametrize("text,expect", [
    ("10:00:00", 36000), ("90m", 5400), ("1.5h", 5400), ("7d", 604800), (" 59 ", 59), ("1:59", 119),
    ("000090m", 5400), ("0" * 5000 + "1s", 1), (b"1:00", 60),
])
def test_durations(text, expect):
    assert bounded.duration_s(text) == expect


@pytest.mark.parametrize("text,expect", [
    ("1700mb", 1700), ("2gb", 2048), ("512kb", 1), ("1048576", 1), ("1048577", 2), ("8gw", 65536),
    ("1024pb", MAX_MEMORY_MB), ("0" * 5000 + "1mb", 1),
])
def test_sizes_round_up_in_whole_bytes(text, expect):
    assert bounded.size_mb(text) == expect


@pytest.mark.parametrize("call", [
    lambda: bounded.duration_s("9" * 400 + ":00:00"), lambda: bounded.duration_s("9" * 400 + "s"),
    lambda: bounded.duration_s("9" * 5000), lambda: bounded.size_mb("9" * 400 + "mb"),
    lambda: bounded.size_mb("1025pb"), lambda: bounded.whole("²"), lambda: bounded.whole("٣"),
    lambda: bounded.whole("1_000"), lambda: bounded.whole("+5"), lambda: bounded.whole("9" * 5000),
    lambda: bounded.whole(None), lambda: bounded.decimal("1e5"), lambda: bounded.epoch("1700000000000"),
    lambda: bounded.integer(True, 0, 1), lambda: bounded.integer(10 ** 400, 0, 1),
    lambda: bounded.real(10 ** 400, 0, 1e150), lambda: bounded.real(float("nan"), 0, 1),
    lambda: bounded.real(float("inf"), 0, 1e308),
])
def test_malformed_or_out_of_bounds_is_a_number_error(call):
    with pytest.raises(NumberError) as e:
        call()
    assert "\n" not in str(e.value) and len(str(e.value)) <= MAX_TEXT


@given(st.text(max_size=30) | st.binary(max_size=30) | st.integers() | st.floats() | st.none())
def test_parsers_raise_only_number_errors(value):
    for parse in (bounded.duration_s, bounded.size_mb, bounded.whole, bounded.decimal, bounded.epoch):
        try:
            got = parse(value)
        except NumberError:
            continue
        assert 0 <= got <= max(MAX_TIME, MAX_MEMORY_MB, bounded.MAX_WEIGHT)


def test_bounds_read_as_powers_of_two():
    assert [bounded.bound_text(n) for n in (bounded.MAX_ACTIVE, bounded.MAX_COUNT, MAX_TIME, 64)] == \
        ["2^31 - 2", "2^31 - 1", "2^40", "64"]


def test_show_shortens_and_never_raises():
    assert show("x" * 100_000).endswith("...") and len(show("x" * 100_000)) == 40
    assert show(10 ** 5000) == "a number of 5001 digits"
    assert show("a\nb") == "'a\\nb'"


@attrs.frozen
class _Up:
    up: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    mode: str = attrs.field(default="a", validator=attrs.validators.in_(["a", "b"]))


def test_attrs_validator_errors_read_as_key_expected_got():
    with pytest.raises(TypeError) as e:
        _Up("up")
    assert describe(e.value) == "up: expected true or false, got 'up'"
    with pytest.raises(ValueError) as e:
        _Up(True, "zz")
    assert describe(e.value) == "mode: expected one of 'a', 'b', got 'zz'"
    with pytest.raises(TypeError) as e:
        _Up()
    assert describe(e.value) == "missing key up"


def test_parser_limits_read_as_what_they_mean():
    with pytest.raises(ValueError) as e:
        int("9" * 5000)
    assert describe(e.value) == "a number with too many digits"
    assert where_in_text("f.json", "{\n" + "9" * 5000, e.value) == "f.json:2"
    deep = "x = 1\n" + "[" * 200
    assert where_in_text("f.toml", deep, RecursionError()) == "f.toml:2"
    assert describe(RecursionError()).startswith("nested too deeply")
    assert describe(OverflowError("int too large to convert to float")) == "a number too large"


def test_a_line_is_one_line_and_short():
    text = line("site.toml:3", "key: " + "v" * 1000 + "\nmore")
    assert text.startswith("site.toml:3: key: vvv") and "\n" not in text
    assert len(text) == len("site.toml:3: ") + MAX_TEXT

"""A plan's pending reasons, kept as the cycle made them and sorted only when read whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vmsched.plan import Pending, PendingReasons, Plan, Verdict

NOW = Pending(Verdict.NOT_NOW, "0/4 domains: 4 insufficient cores")
HELD = Pending(Verdict.NOT_NOW, "job is held (state H)")
NEVER = Pending(Verdict.NEVER, "no image is open to VO x")


def test_reads_as_the_sorted_pairs_and_later_reasons_win():
    r = PendingReasons({"9": NOW}, [(["3", "1"], NOW)], {"1": NEVER, "5": HELD})
    assert list(r) == [("1", NEVER), ("3", NOW), ("5", HELD), ("9", NOW)]
    assert len(r) == 4 and r[0] == ("1", NEVER) and r[-1] == ("9", NOW)
    assert r.get("3") is NOW and r.get("1") is NEVER and r.get("nope") is None
    assert r.never("1") is NEVER and r.never("3") is None and r.never("9") is None
    assert r == (("1", NEVER), ("3", NOW), ("5", HELD), ("9", NOW))


def test_a_plan_built_from_pairs_equals_one_built_from_groups():
    a = Plan(1.0, (), (("a", NOW), ("b", NOW)))
    b = Plan(1.0, (), PendingReasons({}, [(["b", "a"], NOW)]))
    assert a == b and a.reason("b") is NOW and b.to_json() == a.to_json()


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from([NOW, HELD, NEVER])), max_size=12),
       st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=5), max_size=4),
       st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from([NOW, HELD, NEVER])), max_size=12))
def test_same_as_a_dict_filled_in_order(early, groups, late):
    expect: dict[str, Pending] = dict(early)
    for jids in groups:
        expect.update(dict.fromkeys(jids, HELD))
    expect.update(dict(late))
    r = PendingReasons(dict(early), [(jids, HELD) for jids in groups], dict(late))
    assert list(r) == sorted(expect.items())
    for jid in "abcdefgh":
        assert r.get(jid) is expect.get(jid)

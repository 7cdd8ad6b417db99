"""tools/vpndrill/scenario_file.py: the shipped scenarios load, and every
broken file gets one error naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.vpndrill.scenario_file import Chaos, ScenarioError, chaos_steps, key_lines, load, parse

SCENARIOS = Path(__file__).resolve().parents[3] / "tools" / "vpndrill" / "scenarios"

GOOD = """\
name = "t"
liveness_s = 2.0
[[member]]
name = "m1"
[[member]]
name = "m2"
weight = 200
[[hub]]
name = "H"
users = { u = "pw" }
[[clients]]
count = 3
hub = "H"
user = "u"
[[step]]
after = "settled"
action = "kill"
target = "m2"
[[step]]
at = 10
action = "start"
target = "last"
"""


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path):
    s = load(path)
    assert s.members and s.clients and (s.steps or s.chaos)


def test_a_good_file_parses_into_records():
    s = parse(GOOD)
    assert [(m.name, m.weight) for m in s.members] == [("m1", 100), ("m2", 200)]
    assert s.hubs[0].users == {"u": "pw"} and not s.hubs[0].dynamic
    assert s.client_count == 3 and s.clients[0].password == "pw"
    kill, start = s.steps
    assert (kill.after, kill.at, kill.line) == ("settled", None, 15)
    assert (start.at, start.target, start.line) == (10.0, "last", 19)


@pytest.mark.parametrize("broken, line, words", [
    (GOOD.replace('target = "m2"', 'target = "m3"'), 18, "no server named 'm3'"),
    (GOOD.replace('action = "kill"', 'action = "explode"'), 17, "unknown action 'explode'"),
    (GOOD.replace("count = 3", "count = 0"), 12, "0 is not within"),
    (GOOD.replace('hub = "H"', 'hub = "X"'), 13, "no [[hub]] named 'X'"),
    (GOOD.replace('after = "settled"', 'after = "sunrise"'), 16, "unknown condition"),
    (GOOD.replace('at = 10', 'at = 10\nafter = "settled"'), 19, "exactly one of"),
    (GOOD.replace("weight = 200", 'weight = "heavy"'), 7, "must be int"),
    (GOOD.replace("liveness_s = 2.0", "livenes_s = 2.0"), 2, "unknown key"),
    (GOOD.replace('name = "m1"', 'name = "m1'), 4, "not valid TOML"),
    (GOOD.replace("[[step]]\nat", "[step]\nat"), 19, "not valid TOML"),
])
def test_a_broken_file_gets_one_error_with_its_line(broken: str, line: int, words: str):
    with pytest.raises(ScenarioError) as err:
        parse(broken, "s.toml")
    assert err.value.line == line, str(err.value)
    assert str(err.value).startswith(f"s.toml:{line}: ") and words in str(err.value)


def test_key_lines_counts_array_tables():
    lines = key_lines(GOOD)
    assert lines[("member", 1, "weight")] == 7 and lines[("step", 1, None)] == 19 and lines[("", None, "name")] == 1


def test_chaos_is_seeded_bounded_and_undoes_each_fault():
    chaos = Chaos(duration_s=60, seed=7, faults=("kill", "stop", "restart"), every_s=(2, 5), hold_s=(1, 3))
    a, b = chaos_steps(chaos, ["m1", "m2"], 10.0), chaos_steps(chaos, ["m1", "m2"], 10.0)
    assert a == b and a
    assert all(10.0 <= s.at <= 70.0 for s in a if s.at is not None)
    undo = {"kill": "start", "stop": "cont"}
    for i, s in enumerate(a):
        if s.action in undo:
            assert a[i + 1].action == undo[s.action] and a[i + 1].target == s.target
    assert chaos_steps(Chaos(60, 8, ("kill",), (2, 5), (1, 3)), ["m1"], 0.0) != chaos_steps(
        Chaos(60, 7, ("kill",), (2, 5), (1, 3)), ["m1"], 0.0)

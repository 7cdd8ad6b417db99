"""@message is a dataclass_transform: a type checker sees each bus record's
generated keyword-only __init__ and its frozen fields."""

import textwrap
from pathlib import Path

import pytest

from vpnbus import envelope

api = pytest.importorskip("mypy.api", reason="mypy is not installed")

SNIPPET = textwrap.dedent('''
    from vpnbus.envelope import message

    @message("t.hello")
    class Hello:
        version: int
        name: str
        note: str = ""

    ok = Hello(version=1, name="h")
    missing = Hello(version=1)
    positional = Hello(1, "h")
    ok.version = 2
''')


def test_type_checker_sees_the_generated_init(tmp_path, monkeypatch):
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    monkeypatch.setenv("MYPYPATH", str(Path(envelope.__file__).parents[1]))
    out, err, status = api.run([str(source), "--ignore-missing-imports", "--no-error-summary",
                                "--cache-dir", str(tmp_path / "cache")])
    errors = {int(line.split(":")[1]): line for line in out.splitlines() if ": error:" in line}
    lines = SNIPPET.splitlines()
    assert sorted(lines[n - 1] for n in errors) == sorted([
        "missing = Hello(version=1)", 'positional = Hello(1, "h")', "ok.version = 2"]), out + err
    assert 'Missing named argument "name"' in out and status == 1

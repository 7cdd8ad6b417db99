"""What a vpnctl verb is: its arguments, the JSON-RPC calls it makes, its output.

A verb's `run` receives a `Ctx` (the admin client, the bound arguments, the
target hub) and returns the JSON-RPC `result` of its main call; `render`
turns that result into the table vpncmd would print (None: the verb only
reports success). `methods` lists every JSON-RPC method the verb calls, in
order, for documentation and for the `help` listing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from tools.vpnctl.args import Bound, Param, Positional, UsageError

Result = dict[str, Any]


class VerbError(Exception):
    """A verb failed on this side after talking to the server (for example the
    certificate file could not be written). main prints it on one line."""


class Caller(Protocol):
    def call(self, method: str, params: dict[str, Any] | None = None) -> Result: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Ctx:
    """Everything a verb needs to run."""

    client: Caller
    args: Bound
    hub: str | None
    """The target Virtual Hub (--hub), None when not given."""

    def need_hub(self, verb: str) -> str:
        """The hub for a hub-scoped verb; UsageError when none was chosen."""
        if not self.hub:
            raise UsageError(f"{verb} works on a Virtual Hub: add --hub NAME")
        return self.hub

    def hub_or_arg(self, verb: str) -> str:
        """The positional hub name if given, else --hub."""
        return self.args.arg or self.need_hub(verb)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Verb:
    name: str
    """vpncmd's spelling; lookups are case-insensitive."""
    methods: tuple[str, ...]
    summary: str
    run: Callable[[Ctx], Result]
    render: Callable[[Result], str] | None = None
    positional: Positional | None = None
    params: tuple[Param, ...] = ()
    hub_scoped: bool = False
    """Needs a Virtual Hub (from --hub, or the positional name where allowed)."""


def simple(method: str, build: Callable[[Ctx], dict[str, Any]]) -> Callable[[Ctx], Result]:
    """A `run` making one call with the params `build` returns."""

    def run(ctx: Ctx) -> Result:
        return ctx.client.call(method, build(ctx))

    return run


def no_params(method: str) -> Callable[[Ctx], Result]:
    return simple(method, lambda ctx: {})

"""The verb table: every vpncmd verb vpnctl knows, looked up case-insensitively.

The verbs themselves live in verbs_server (server, hubs, users),
verbs_cluster (cluster modes and members), verbs_session (sessions, MAC/IP
tables, local bridges) and verbs_cascade_nat (cascades and SecureNAT); this
module joins them and answers lookups and the help listing.
"""

from __future__ import annotations

from tools.vpnctl import verbs_cascade_nat, verbs_cluster, verbs_server, verbs_session
from tools.vpnctl.args import UsageError, resolve_name
from tools.vpnctl.spec import Verb

VERBS: tuple[Verb, ...] = (*verbs_server.VERBS, *verbs_cluster.VERBS, *verbs_session.VERBS,
                           *verbs_cascade_nat.VERBS)
_BY_NAME = {v.name.lower(): v for v in VERBS}
assert len(_BY_NAME) == len(VERBS), "duplicate verb names"


def lookup(name: str) -> Verb:
    """The verb `name` means: any case, or a vpncmd abbreviation ("hubl",
    "csc"). Raises UsageError for unknown or ambiguous names."""
    try:
        return _BY_NAME[resolve_name(name, [v.name for v in VERBS], "command").lower()]
    except UsageError as e:
        raise UsageError(f"{e} (see: vpnctl help)") from None


def usage_line(verb: Verb) -> str:
    """"UserCreate <name> [/GROUP:value] ..." for help and error messages."""
    parts = [verb.name]
    if verb.positional is not None:
        p = f"<{verb.positional.name}>"
        parts.append(p if verb.positional.required else f"[{p}]")
    for param in verb.params:
        p = f"/{param.name}:value"
        parts.append(p if param.required else f"[{p}]")
    return " ".join(parts)


def help_text() -> str:
    lines = ["Commands (vpncmd names, any case; hub commands need --hub NAME):", ""]
    for v in VERBS:
        hub = " (hub)" if v.hub_scoped else ""
        lines.append(f"  {usage_line(v)}")
        lines.append(f"      {v.summary}{hub}  [{' -> '.join(v.methods)}]")
    return "\n".join(lines)

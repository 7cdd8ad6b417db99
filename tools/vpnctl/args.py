"""vpncmd's command-argument syntax, parsed without I/O.

A vpncmd command line after the verb is a list of words:

    VERB [ARG] [/NAME:value ...] [/NAME ...]

- At most one positional word (a word not starting with "/"): the verb's
  "[name]"-style argument (hub name, user name, host:port, member id...).
- "/NAME:value" names a parameter. Names are case-insensitive. The value is
  everything after the FIRST ":" so values may contain ":" themselves
  (/SERVER:host:443, an IPv6 address, a note with a colon).
- "/NAME" alone gives the parameter an empty value (vpncmd does the same).
- The values "none" and "null" (any case) mean empty: vpncmd reserves them so
  a script can pass an empty value explicitly (`/GROUP:none`).
- Names may be abbreviated as vpncmd allows (`resolve_name`): an exact match
  wins; else any name starting with the input, or whose "omission name" (its
  capitals and digits: HubCreateStatic -> HCS) matches, is a candidate; more
  than one candidate is an ambiguity error. All-capital names (parameters)
  only take the prefix form.

vpncmd prompts for a missing required parameter; a script-friendly CLI cannot,
so a missing required parameter is a `UsageError` that names it. Unknown
parameters and repeated parameters are usage errors too (vpncmd silently keeps
the first; an operator who typed a parameter twice most likely made a typo).

Value conversions follow vpncmd's rules where they are checked client-side:
yes/no switches (GetParamYes), unsigned integers (GetParamInt), port lists
(StrToPortList: 1..128 distinct ports in 1..65535, separated by "," or " "),
"host:port" (ParseHostPort), and dotted IPv4 addresses.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

MAX_PUBLIC_PORTS = 128  # SoftEther's MAX_PUBLIC_PORT_NUM


class UsageError(ValueError):
    """The command line is wrong; the message tells the operator what to fix.

    Raised by the parser and the converters; main prints it on one line and
    exits with status 2 without contacting the server.
    """


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """One "/NAME:value" parameter a verb accepts."""

    name: str
    """Upper-case name as vpncmd spells it (WEIGHT, PASSWORD, ...)."""
    required: bool = False
    """A missing required parameter is a usage error (vpncmd would prompt)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Positional:
    """The verb's single positional argument (vpncmd's "[name]")."""

    name: str
    """Shown in usage messages, e.g. "name", "id", "server:port", "hubname"."""
    required: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Parsed:
    """The words after the verb, split but not yet checked against a verb."""

    positional: tuple[str, ...]
    params: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Bound:
    """Arguments checked against a verb's spec.

    `arg` is the positional value (None when absent and optional); `params`
    maps upper-case names to values for the parameters that were given.
    """

    arg: str | None
    params: dict[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name.upper(), default)


def split_words(words: Sequence[str]) -> Parsed:
    """Split vpncmd words into positional words and named parameters.

    Raises UsageError for "/" or "/:value" (no name) and for a parameter given
    twice.
    """
    positional: list[str] = []
    params: dict[str, str] = {}
    for word in words:
        if not word.startswith("/"):
            positional.append(word)
            continue
        name, sep, value = word[1:].partition(":")
        name = name.strip().upper()
        if not name:
            raise UsageError(f"parameter without a name: {word!r}")
        if name in params:
            raise UsageError(f"parameter /{name} given more than once")
        params[name] = _reserved_empty(value) if sep else ""
    return Parsed(tuple(_reserved_empty(p) for p in positional), params)


def _reserved_empty(value: str) -> str:
    return "" if value.lower() in ("none", "null") else value


def _omission_name(name: str) -> str:
    return "".join(c for c in name if c.isdigit() or "A" <= c <= "Z")


def _abbreviates(text: str, name: str) -> bool:
    """Whether `text` (lower case) is an accepted short form of `name`."""
    low = name.lower()
    if low.startswith(text):
        return True
    if name.isupper():
        return False
    oname = _omission_name(name).lower()
    if not oname:
        return False
    # "hcs" for HubCreateStatic; "hcstatic": the omission name, then a tail of the name.
    return oname.startswith(text) or (text.startswith(oname) and low.endswith(text[len(oname) :]))


def resolve_name(text: str, names: Sequence[str], what: str = "name") -> str:
    """The one name in `names` that `text` means (see the module doc).

    Raises UsageError when nothing or more than one name matches.
    """
    t = text.lower()
    for name in names:
        if name.lower() == t:
            return name
    hits = [n for n in names if t and _abbreviates(t, n)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise UsageError(f"{what} {text!r} is ambiguous: {', '.join(hits)}")
    raise UsageError(f"unknown {what} {text!r}")


def bind(
    verb: str,
    words: Sequence[str],
    positional: Positional | None,
    params: Sequence[Param],
) -> Bound:
    """Parse `words` for `verb` and check them against its spec.

    Raises UsageError naming the verb and the offending parameter for an
    unexpected positional word, a missing required value, or an unknown name.
    """
    parsed = split_words(words)
    if len(parsed.positional) > 1:
        extra = " ".join(parsed.positional[1:])
        raise UsageError(f"{verb}: unexpected extra argument(s): {extra}")
    arg = parsed.positional[0] if parsed.positional else None
    if positional is None and arg is not None:
        raise UsageError(f"{verb} takes no positional argument (got {arg!r})")
    if positional is not None and positional.required and not arg:
        raise UsageError(f"{verb}: missing argument <{positional.name}>")
    known = [p.name for p in params]
    given: dict[str, str] = {}
    for name, value in parsed.params.items():
        try:
            real = resolve_name(name, known, "parameter")
        except UsageError as e:
            accepted = " ".join(f"/{n}" for n in known) or "none"
            raise UsageError(f"{verb}: {e} (accepted: {accepted})") from None
        if real in given:
            raise UsageError(f"{verb}: parameter /{real} given more than once")
        given[real] = value
    for p in params:
        if p.required and p.name not in given:
            raise UsageError(f"{verb}: missing required parameter /{p.name}:<value>")
    return Bound(arg, given)


def to_yes_no(name: str, value: str | None) -> bool:
    """vpncmd's yes/no switch (GetParamYes: "y..."/"t..."/a non-zero number
    is yes); an absent or empty value means no. Stricter than vpncmd, which
    takes any other word as no: "n..."/"f..."/"off"/0 are no, anything else
    is a usage error, so a typo does not silently turn an option off."""
    if value is None:
        return False
    v = value.strip().lower()
    if v.startswith(("y", "t")) or v == "on" or (v.isdigit() and int(v) != 0):
        return True
    if v == "" or v.startswith(("n", "f")) or v == "off" or (v.isdigit() and int(v) == 0):
        return False
    raise UsageError(f"/{name} must be yes or no (got {value!r})")


def to_uint(name: str, value: str | None, default: int = 0) -> int:
    """An unsigned 32-bit integer; absent or empty gives `default`."""
    if value is None or value.strip() == "":
        return default
    v = value.strip()
    if not v.isdigit():
        raise UsageError(f"/{name} must be a non-negative integer (got {value!r})")
    n = int(v)
    if n > 0xFFFFFFFF:
        raise UsageError(f"/{name} is too large (got {value!r})")
    return n


def to_port_list(name: str, value: str | None) -> list[int]:
    """A list of 1..128 distinct TCP ports, separated by commas or spaces."""
    words = (value or "").replace(",", " ").split()
    if not words:
        raise UsageError(f"/{name} needs at least one port, e.g. /{name}:443,5555")
    ports: list[int] = []
    for w in words:
        if not w.isdigit() or not 1 <= int(w) <= 65535:
            raise UsageError(f"/{name}: {w!r} is not a port number (1-65535)")
        if int(w) in ports:
            raise UsageError(f"/{name}: port {w} is listed twice")
        ports.append(int(w))
    if len(ports) > MAX_PUBLIC_PORTS:
        raise UsageError(f"/{name}: at most {MAX_PUBLIC_PORTS} ports")
    return ports


def to_ipv4(name: str, value: str | None) -> str:
    """A dotted IPv4 address; absent or empty gives "0.0.0.0" (= automatic)."""
    if value is None or value.strip() == "":
        return "0.0.0.0"
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise UsageError(f"/{name} must be an IPv4 address (got {value!r})") from None


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """Split "host:port", "[v6]:port" or (with a default port) "host".

    Raises UsageError for an empty host or a port outside 1..65535.
    """
    t = text.strip()
    host, port_text = t, ""
    if t.startswith("["):
        end = t.find("]")
        if end < 0:
            raise UsageError(f"bad address {text!r}: missing ']'")
        host, rest = t[1:end], t[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UsageError(f"bad address {text!r}")
        port_text = rest[1:]
    elif t.count(":") == 1:
        host, port_text = t.split(":")
    if not host:
        raise UsageError(f"bad address {text!r}: no host name")
    if not port_text:
        if default_port is None:
            raise UsageError(f"bad address {text!r}: expected host:port")
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UsageError(f"bad address {text!r}: port must be 1-65535")
    return host, int(port_text)

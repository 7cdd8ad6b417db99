"""A vpnd inside a test's own network namespace: re-exported from the
product lab (tools/vpndrill/lab/nsvpnd.py), where benchmarks use it too."""

from tools.vpndrill.lab.nsvpnd import ROOT, WAIT_S, NsVpnd, vpnd_in, wait_for

__all__ = ["NsVpnd", "ROOT", "WAIT_S", "vpnd_in", "wait_for"]

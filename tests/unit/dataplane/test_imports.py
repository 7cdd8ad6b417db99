"""The data plane's modules depend one way (issue 8, "typed edges").

Layers, left to right; a module may import only modules of layers to its
right, never its own layer or one to its left -- `if TYPE_CHECKING:` imports
included, since a type-only cycle is still two modules knowing each other:

    service, vpn_handler → hubs → session → bridge → virtual_hub → switch, tap

So a session does not know the running hub it is attached to (it is handed
a detach callback), and the switch core knows nothing above it. A new module
in node/dataplane must be given a layer here before this test passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "node.dataplane"
DATAPLANE = Path(__file__).resolve().parents[3] / "node" / "dataplane"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("service", "vpn_handler"),   # the edges: the daemon's service, the VPN login handler
    ("hubs",),                    # RunningHub: the running hubs of this node
    ("session",),                 # VpnSession: one client's port
    ("bridge",),                  # LocalBridge: one device's port
    ("virtual_hub",),             # VirtualHub: switch + ports
    ("switch", "tap"),            # sans-IO switch core; frame devices
)
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def dataplane_imports(source: str, module: str) -> set[str]:
    """The node.dataplane modules `source` (module `module` of the package)
    imports, anywhere in the file, absolutely or relatively."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: from . import x / from .x import y
                parent = PACKAGE.rsplit(".", node.level - 1)[0] if node.level > 1 else PACKAGE
                base = f"{parent}.{base}" if base else parent
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith(PACKAGE + "."):
                found.add(name[len(PACKAGE) + 1:].split(".")[0])
    found.discard(module)
    return found


def modules() -> list[str]:
    return sorted(p.stem for p in DATAPLANE.glob("*.py") if p.stem != "__init__")


def test_every_dataplane_module_has_a_layer():
    assert set(modules()) == set(RANK), "place new modules in LAYERS (and remove gone ones)"


@pytest.mark.parametrize("module", modules())
def test_imports_point_right_only(module):
    source = (DATAPLANE / f"{module}.py").read_text()
    wrong = {imported for imported in dataplane_imports(source, module)
             if imported in RANK and RANK[imported] <= RANK[module]}
    assert not wrong, f"node/dataplane/{module}.py imports {sorted(wrong)}, which are not to its right"


@pytest.mark.parametrize("source", [
    "from node.dataplane.hubs import RunningHub",
    "import node.dataplane.hubs",
    "from node.dataplane import hubs",
    "from . import hubs",
    "from .hubs import RunningHub",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from node.dataplane.hubs import RunningHub",
    "def f():\n    from node.dataplane.hubs import RunningHub",
])
def test_the_checker_sees_every_form_of_import(source):
    assert dataplane_imports(source, "session") == {"hubs"}


def test_the_real_edges_are_seen():
    # guards against the checker passing because it found nothing at all
    imports = {m: dataplane_imports((DATAPLANE / f"{m}.py").read_text(), m) for m in modules()}
    assert "session" in imports["hubs"] and "virtual_hub" in imports["session"]
    assert "session" in imports["vpn_handler"]

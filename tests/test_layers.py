"""The package's layering, read from the source with ``ast``: nothing is imported, so an import that a test run
never reaches (inside a function, on a rare branch) is checked all the same.

Layers, low to high (a module may import its own layer and the ones below it, never one above):
``avs.errors`` < ``avs.formats`` < ``avs.features`` < ``avs.models`` < ``avs.engine`` < ``avs.eval`` <
``avs.train`` < ``avs.extract`` < ``avs.demo`` < ``avs.serve`` < ``avs.cli``. ``trec_eval_compat`` sits below them
all and imports nothing of avs. Imports under ``if TYPE_CHECKING:`` never run, so they may point anywhere.
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pytest

from conftest import REPO

LAYERS = (
    "avs.errors",
    "avs.formats",
    "avs.features",
    "avs.models",
    "avs.engine",
    "avs.eval",
    "avs.train",
    "avs.extract",
    "avs.demo",
    "avs.serve",
    "avs.cli",
)
# These two wire the layers together: the package's lazy public API and ``python -m avs``.
FREE = frozenset({"avs", "avs.__main__"})
# Packages that hold files, not code (located with importlib.resources); they sit with the base layer.
DATA_PACKAGES = frozenset({"avs.topicsets"})

# Arrows the tree has today that break a rule below, as (importer, imported). Each is tolerated only until it is
# fixed; test_known_violations_still_exist fails once one is gone, so that its entry is removed with it.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()

# Every module that imports torch when it is imported; anything else must stay usable (and cheap) without it.
TORCH_AT_MODULE_LEVEL = frozenset(
    {
        # text inputs are handed to the text encoders as tensors (bag-of-words counts, GRU and CLIP token ids)
        "avs.features.clip_tokenizer",
        "avs.features.featurize",
        "avs.features.vocab",
        # the models are torch modules, and loading / saving / summarising them is torch's state_dict
        "avs.models.blocks",
        "avs.models.clip",
        "avs.models.clip_text",
        "avs.models.clip_vision",
        "avs.models.gru",
        "avs.models.io",
        "avs.models.laff",
        "avs.models.official",
        "avs.models.summary",
        # the engine runs models over whole collections (encode, embed, index) and scans the index on torch
        "avs.engine.embed",
        "avs.engine.encode",
        "avs.engine.index",
        "avs.engine.search",
        # diagnostics read a model's attention; retrieval metrics rank similarity matrices as the official code does
        "avs.eval.diagnostics",
        "avs.eval.retrieval",
        # training is torch
        "avs.train.loop",
        "avs.train.optim",
        # extraction stacks preprocessed frames into tensors for the CLIP image tower
        "avs.extract.pipeline",
    }
)
# Layers that must stay torch-free even inside functions: they read and write what teams exchange.
TORCH_FREE = ("avs.errors", "avs.formats", "trec_eval_compat")
# trec_eval_compat is NIST's evaluation on its own: the third-party packages it may import, at any scope.
TREC_EVAL_COMPAT_DEPENDENCIES = frozenset({"numpy", "pandas", "lxml"})


@dataclass(frozen=True, order=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # the imported module, absolute; for ``from X import name`` X itself unless X.name is a module
    scope: str  # "module" (runs on import), "function" (runs when called) or "type_checking" (never runs)

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def read_sources(roots=("avs", "trec_eval_compat")) -> dict[str, tuple[str, bool]]:
    """{module name: (source, is a package)} of every module under the roots, symlinked folders included (a link
    such as avs/topicsets is importable like any package)."""
    out = {}
    for root in roots:
        for folder, _, files in os.walk(REPO / root, followlinks=True):
            for name in files:
                if not name.endswith(".py"):
                    continue
                parts = Path(folder, name).relative_to(REPO).with_suffix("").parts
                package = parts[-1] == "__init__"
                module = ".".join(parts[:-1] if package else parts)
                out[module] = (Path(folder, name).read_text(encoding="utf-8"), package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, package: bool, modules: frozenset[str]):
        self.module, self.package, self.modules = module, package, modules
        self.scope = "module"
        self.found: set[Import] = set()

    def _within(self, scope: str, nodes) -> None:
        outer = self.scope
        self.scope = outer if outer == "type_checking" else scope
        for node in nodes:
            self.visit(node)
        self.scope = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._within("function", node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._within("type_checking", node.body)
        self._within(self.scope, node.orelse)  # the else branch is what runs

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.add(Import(self.module, node.lineno, alias.name, self.scope))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module.split(".") if self.package else self.module.split(".")[:-1]
            parent = package[: len(package) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self.found.add(Import(self.module, node.lineno, sub if sub in self.modules else base, self.scope))


def scan(sources: Mapping[str, tuple[str, bool]]) -> list[Import]:
    modules = frozenset(sources)
    found: set[Import] = set()
    for module, (source, package) in sources.items():
        collector = _Collector(module, package, modules)
        collector.visit(ast.parse(source, filename=module))
        found |= collector.found
    return sorted(found)


def _runtime(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.scope != "type_checking"]


def _top(name: str) -> str:
    return name.split(".")[0]


def _third_party(name: str) -> bool:
    return _top(name) not in sys.stdlib_module_names and _top(name) not in ("avs", "trec_eval_compat")


def rank(module: str) -> int | None:
    """The layer of an avs module (an index into LAYERS), None for one that belongs to no layer."""
    if module == "avs":
        # `from avs import __version__` is fine above the base: avs/__init__ imports its API lazily, so taking a
        # name from it pulls in no layer.
        return 1
    if module == "avs.__main__":
        return len(LAYERS)  # it runs the CLI
    if module in DATA_PACKAGES or any(module.startswith(f"{p}.") for p in DATA_PACKAGES):
        return 0
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(f"{layer}."):
            return i
    return None


def unlayered(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    return [
        f"{m} belongs to no layer: add it to LAYERS (or DATA_PACKAGES)"
        for m in sorted(sources)
        if _top(m) == "avs" and m not in FREE and rank(m) is None
    ]


def upward_imports(imports: list[Import], known=KNOWN_VIOLATIONS) -> list[str]:
    out = []
    for i in _runtime(imports):
        if _top(i.module) != "avs" or i.module in FREE or _top(i.target) != "avs" or (i.module, i.target) in known:
            continue
        have, want = rank(i.module), rank(i.target)
        if have is not None and want is not None and want > have:
            out.append(f"{i}: layer {_layer_name(want)} is above {_layer_name(have)}")
    return out


def _layer_name(r: int) -> str:
    return LAYERS[r] if r < len(LAYERS) else "avs.__main__"


def trec_eval_compat_violations(imports: list[Import]) -> list[str]:
    out = []
    for i in imports:
        if _top(i.module) != "trec_eval_compat":
            continue
        if _top(i.target) == "avs":  # not even for type hints: it is a package of its own
            out.append(f"{i}: trec_eval_compat stands alone")
        elif i.scope != "type_checking" and _third_party(i.target):
            if _top(i.target) not in TREC_EVAL_COMPAT_DEPENDENCIES:
                out.append(f"{i}: not one of its dependencies {sorted(TREC_EVAL_COMPAT_DEPENDENCIES)}")
    return out


def torch_violations(imports: list[Import], allowed=TORCH_AT_MODULE_LEVEL) -> list[str]:
    torch = [i for i in _runtime(imports) if _top(i.target) == "torch"]
    out = [
        f"{i}: {p} is torch-free" for i in torch for p in TORCH_FREE if i.module == p or i.module.startswith(f"{p}.")
    ]
    importers = {i.module for i in torch if i.scope == "module"}
    out += [
        f"{i}: at module level, and {i.module} is not in TORCH_AT_MODULE_LEVEL"
        for i in torch
        if i.scope == "module" and i.module not in allowed
    ]
    out += [
        f"{m} is in TORCH_AT_MODULE_LEVEL but no longer imports torch: remove it" for m in sorted(allowed - importers)
    ]
    return out


def cycles(imports: list[Import], known=KNOWN_VIOLATIONS) -> list[str]:
    """One cycle of each strongly connected group of avs / trec_eval_compat modules, as its chain of imports
    (function-local imports count: they run the same import machinery, only later)."""
    graph: dict[str, dict[str, int]] = {}
    for i in _runtime(imports):
        # a package's __init__ taking a name it defined itself imports nothing
        if _top(i.target) in ("avs", "trec_eval_compat") and i.target != i.module and (i.module, i.target) not in known:
            graph.setdefault(i.module, {}).setdefault(i.target, i.line)
    out = []
    for group in _strongly_connected(graph):
        if len(group) == 1:
            continue
        start = min(group)
        chain = _path_back(graph, start, group)
        steps = " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(chain, [*chain[1:], start]))
        others = sorted(group - set(chain))
        out.append(f"import cycle: {steps} -> {start}" + (f" (and through {', '.join(others)})" if others else ""))
    return out


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph.get(node, {})):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            group: set[str] = set()
            while node not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _path_back(graph: dict[str, dict[str, int]], start: str, group: set[str]) -> list[str]:
    """The shortest chain start -> ... -> (a module that imports start), within the group."""
    parents = {start: None}
    queue = [start]
    for node in queue:
        for child in sorted(graph.get(node, {})):
            if child == start:
                chain = [node]
                while parents[chain[-1]] is not None:
                    chain.append(parents[chain[-1]])
                return chain[::-1]
            if child in group and child not in parents:
                parents[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is in a cycle that does not come back to it")


def stale_known_violations(imports: list[Import], known=KNOWN_VIOLATIONS) -> list[str]:
    edges = {(i.module, i.target) for i in _runtime(imports)}
    return [f"{a} no longer imports {b}: remove it from KNOWN_VIOLATIONS" for a, b in sorted(known - edges)]


@pytest.fixture(scope="module")
def tree():
    sources = read_sources()
    return sources, scan(sources)


def _report(problems: list[str]) -> str:
    return "\n".join(["", *problems])


def test_every_avs_module_has_a_layer(tree):
    sources, _ = tree
    assert not unlayered(sources), _report(unlayered(sources))


def test_trec_eval_compat_stands_alone(tree):
    _, imports = tree
    assert not trec_eval_compat_violations(imports), _report(trec_eval_compat_violations(imports))


def test_layers_import_only_downwards(tree):
    _, imports = tree
    assert not upward_imports(imports), _report(upward_imports(imports))


def test_no_import_cycles(tree):
    _, imports = tree
    assert not cycles(imports), _report(cycles(imports))


def test_torch_stays_in_its_layers(tree):
    _, imports = tree
    assert not torch_violations(imports), _report(torch_violations(imports))


def test_known_violations_still_exist(tree):
    _, imports = tree
    assert not stale_known_violations(imports), _report(stale_known_violations(imports))


def test_the_checks_catch_what_they_are_for():
    fake = {
        "avs": ("", True),
        "avs.errors": ("import avs\n", False),
        "avs.formats": ("", True),
        "avs.formats.a": ("from . import b\nimport torch.nn\n", False),
        "avs.formats.b": ("def f():\n    from avs.formats import a\n", False),
        "avs.features": ("", True),
        "avs.features.f": ("from ..models.m import thing\n", False),
        "avs.models": ("", True),
        "avs.models.m": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import avs.cli\nelse:\n    import avs.demo\n",
            False,
        ),
        "avs.models.t": ("def f():\n    import torch\n", False),
        "avs.cli": ("from ..formats import a\nfrom avs.models import t\n", True),
        "avs.widgets": ("", False),
        "trec_eval_compat": ("from avs.errors import InputError\nimport h5py\nimport numpy\n", True),
    }
    imports = scan(fake)
    assert Import("avs.models.m", 3, "avs.cli", "type_checking") in imports
    assert unlayered(fake) == ["avs.widgets belongs to no layer: add it to LAYERS (or DATA_PACKAGES)"]
    assert upward_imports(imports, known=frozenset()) == [
        "avs.errors:1 imports avs: layer avs.formats is above avs.errors",
        "avs.features.f:1 imports avs.models.m: layer avs.models is above avs.features",
        "avs.models.m:5 imports avs.demo: layer avs.demo is above avs.models",
    ]
    assert upward_imports(imports, known={("avs.features.f", "avs.models.m"), ("avs.errors", "avs")}) == [
        "avs.models.m:5 imports avs.demo: layer avs.demo is above avs.models"
    ]
    assert cycles(imports, known=frozenset()) == [
        "import cycle: avs.formats.a (line 1) -> avs.formats.b (line 2) -> avs.formats.a"
    ]
    assert cycles(imports, known={("avs.formats.b", "avs.formats.a")}) == []
    assert torch_violations(imports, allowed={"avs.models.m"}) == [
        "avs.formats.a:2 imports torch.nn: avs.formats is torch-free",
        "avs.formats.a:2 imports torch.nn: at module level, and avs.formats.a is not in TORCH_AT_MODULE_LEVEL",
        "avs.models.m is in TORCH_AT_MODULE_LEVEL but no longer imports torch: remove it",
    ]
    assert trec_eval_compat_violations(imports) == [
        "trec_eval_compat:1 imports avs.errors: trec_eval_compat stands alone",
        "trec_eval_compat:2 imports h5py: not one of its dependencies ['lxml', 'numpy', 'pandas']",
    ]
    assert stale_known_violations(imports, known={("avs.cli", "avs.formats.a"), ("avs.cli", "avs.engine")}) == [
        "avs.cli no longer imports avs.engine: remove it from KNOWN_VIOLATIONS"
    ]

"""The layout's rules, read from the source: imports go one way, no cycles, small modules.

- nothing under ``rlhf/`` imports an edge (the web stack, Celery, the CLI, the workers),
  at any depth, lazy imports inside functions included;
- nothing under ``rlhf/services/`` imports ``rlhf.jobs`` (the jobs call the services, never back);
- no two project modules import each other, directly or round a circle;
- no module of the product is over 500 lines.
Only the source is parsed (never imported), so a lazy import cannot hide.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rlhf", "rlhf_cli", "feedback_ui", "workers")
EDGES = ("gradio", "celery", "kombu", "fastapi", "starlette", "uvicorn", "typer", "rlhf_cli", "feedback_ui",
         "workers")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic's scripts are generated, not designed
            out[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module name this file imports, absolute or relative, at any depth."""
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(path, name):
            # "from pkg import module" names the module; "from module import thing" the module itself.
            target = imported if imported in modules else imported.rpartition(".")[0]
            if target in modules and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_domain_imports_no_edge_at_any_depth():
    bad = sorted(f"{name} imports {imported}" for name, path in _modules().items() if name.split(".")[0] == "rlhf"
                 for imported in _imports(path, name) if imported.split(".")[0] in EDGES)
    assert not bad, "rlhf/ must not import the web stack, Celery, the CLI or the workers:\n" + "\n".join(bad)


def test_the_web_app_does_not_import_the_workers_or_the_cli():
    bad = sorted(f"{name} imports {imported}" for name, path in _modules().items()
                 if name.split(".")[0] == "feedback_ui" for imported in _imports(path, name)
                 if imported.split(".")[0] in ("workers", "rlhf_cli", "celery"))
    assert not bad, "\n".join(bad)


def test_services_do_not_import_the_jobs_that_run_them():
    """``rlhf.jobs`` (what a worker runs) calls the services; what both need lives in the services or below."""
    bad = sorted(f"{name} imports {imported}" for name, path in _modules().items()
                 if name == "rlhf.services" or name.startswith("rlhf.services.")
                 for imported in _imports(path, name) if imported == "rlhf.jobs" or imported.startswith("rlhf.jobs."))
    assert not bad, "rlhf/services/ must not import rlhf.jobs, at any depth:\n" + "\n".join(bad)


def test_no_two_modules_import_each_other():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_module_is_over_500_lines():
    long = sorted(f"{path.relative_to(ROOT)}: {n}" for path in _modules().values()
                  if (n := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES)
    assert not long, "split these modules:\n" + "\n".join(long)


@pytest.mark.parametrize("module, source, expected", [
    ("rlhf.mod", "import celery\n", {"celery"}),
    ("rlhf.mod", "def f():\n    from workers.dispatch import job_queue\n",
     {"workers.dispatch", "workers.dispatch.job_queue"}),
    ("rlhf.mod", "from . import db\n", {"rlhf", "rlhf.db"}),
    ("rlhf.jobs.mod", "from ..services import runs\n", {"rlhf.services", "rlhf.services.runs"}),
])
def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path, module, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert _imports(path, module) == expected


def test_the_cycle_finder_finds_a_cycle_round_three_modules():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

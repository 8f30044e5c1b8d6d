"""The layout's rules, read from the source: imports go one way, no cycles, small modules.

- nothing under ``rlhf/`` imports an edge (the web stack, Celery, the CLI, the workers),
  at any depth, lazy imports inside functions included;
- nothing under ``rlhf/services/`` imports ``rlhf.jobs`` (the jobs call the services, never back);
- the workers import neither the web app nor the CLI;
- no two project modules import each other, directly or round a circle, and no two of the
  domain's subpackages (``rlhf.services``, ``rlhf.jobs``, ...) or top-level packages either;
- an import of a project module inside a function says why it is there (``# heavy:`` it loads
  a model library into a process that must not load one; ``# cycle:`` a real import cycle),
  and never repeats a module the file already imports at its top;
- no module of the product is over 500 lines.
Only the source is parsed (never imported), so a lazy import cannot hide. The one exception:
the web app and the CLI are imported in a fresh interpreter, to see that neither loads torch.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rlhf", "rlhf_cli", "feedback_ui", "workers")
EDGES = ("gradio", "celery", "kombu", "fastapi", "starlette", "uvicorn", "typer", "rlhf_cli", "feedback_ui", "workers")
MAX_LINES = 500
# The model libraries: seconds to import and gigabytes once a model loads.
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
REASON = re.compile(r"#\s*(heavy|cycle):")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic's scripts are generated, not designed
            out[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


def _from_base(node: ast.ImportFrom, path: Path, module: str) -> str:
    """The absolute module a ``from ... import`` reads from (relative imports resolved)."""
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
    return base


def _imports(path: Path, module: str) -> set[str]:
    """Every module name this file imports, absolute or relative, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, path, module)
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


def _unit(module: str) -> str:
    """What a module belongs to: a subpackage of the domain (``rlhf.services``), the domain's core
    (``rlhf``: tables, settings, db, errors), or its top-level package."""
    parts = module.split(".")
    if parts[0] == "rlhf" and len(parts) > 1 and (ROOT / "rlhf" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def _targets(node: ast.Import | ast.ImportFrom, path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules one import statement loads: ``from pkg import mod`` names mod, ``from mod import x`` mod."""
    if isinstance(node, ast.Import):
        names = {a.name for a in node.names}
    else:
        base = _from_base(node, path, module)
        names = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module loads (inside ``if``/``try`` too, not under ``if TYPE_CHECKING``)."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            todo += node.orelse if "TYPE_CHECKING" in ast.unparse(node.test) else node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return found


def _function_imports(path: Path, module: str, modules: dict[str, Path]) -> list[tuple[int, set[str], bool, set[str]]]:
    """(line, project modules, says why, of those already imported at the top) for each import of a
    project module inside a function of this file."""
    source = path.read_text(encoding="utf-8")
    tree, lines = ast.parse(source), source.splitlines()
    top = set().union(*(_targets(n, path, module, modules) for n in _top_level_imports(tree)))
    nodes = {
        (n.lineno, n.col_offset): n
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for n in ast.walk(fn)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    found = []
    for _, node in sorted(nodes.items()):
        targets = _targets(node, path, module, modules)
        if not targets:
            continue
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        why = any(REASON.search(line) for line in lines[node.lineno - 1 : node.end_lineno]) or (
            above.startswith("#") and REASON.search(above) is not None
        )
        found.append((node.lineno, targets, why, targets & top))
    return found


def _lazy_project_imports() -> list[tuple[str, set[str], bool, set[str]]]:
    """:func:`_function_imports` for every module of the domain, the web app and the workers."""
    modules = _modules()
    return [
        (f"{path.relative_to(ROOT)}:{line}", targets, why, again)
        for name, path in sorted(modules.items())
        if name.split(".")[0] in ("rlhf", "feedback_ui", "workers")
        for line, targets, why, again in _function_imports(path, name, modules)
    ]


def test_the_domain_imports_no_edge_at_any_depth():
    bad = sorted(
        f"{name} imports {imported}"
        for name, path in _modules().items()
        if name.split(".")[0] == "rlhf"
        for imported in _imports(path, name)
        if imported.split(".")[0] in EDGES
    )
    assert not bad, "rlhf/ must not import the web stack, Celery, the CLI or the workers:\n" + "\n".join(bad)


def test_the_web_app_does_not_import_the_workers_or_the_cli():
    bad = sorted(
        f"{name} imports {imported}"
        for name, path in _modules().items()
        if name.split(".")[0] == "feedback_ui"
        for imported in _imports(path, name)
        if imported.split(".")[0] in ("workers", "rlhf_cli", "celery")
    )
    assert not bad, "\n".join(bad)


def test_services_do_not_import_the_jobs_that_run_them():
    """``rlhf.jobs`` (what a worker runs) calls the services; what both need lives in the services or below."""
    bad = sorted(
        f"{name} imports {imported}"
        for name, path in _modules().items()
        if name == "rlhf.services" or name.startswith("rlhf.services.")
        for imported in _imports(path, name)
        if imported == "rlhf.jobs" or imported.startswith("rlhf.jobs.")
    )
    assert not bad, "rlhf/services/ must not import rlhf.jobs, at any depth:\n" + "\n".join(bad)


def test_the_workers_import_neither_the_web_app_nor_the_cli():
    bad = sorted(
        f"{name} imports {imported}"
        for name, path in _modules().items()
        if name.split(".")[0] == "workers"
        for imported in _imports(path, name)
        if imported.split(".")[0] in ("feedback_ui", "rlhf_cli")
    )
    assert not bad, "workers/ may import only rlhf:\n" + "\n".join(bad)


def test_no_two_modules_import_each_other():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_two_packages_import_each_other():
    """Between the domain's subpackages (``rlhf.services`` and ``rlhf.jobs``, ``rlhf.training`` and
    ``rlhf.inference``, ...) and the top-level packages, imports go one way, lazy ones included."""
    units: dict[str, set[str]] = {}
    for name, deps in _graph().items():
        units.setdefault(_unit(name), set()).update(_unit(d) for d in deps if _unit(d) != _unit(name))
    cycles = _cycles(units)
    assert not cycles, "packages importing each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_an_import_inside_a_function_says_why():
    bad = sorted(
        f"{where}: {', '.join(sorted(targets))}" for where, targets, why, _ in _lazy_project_imports() if not why
    )
    assert not bad, (
        "import these at the module's top, or say why not on the import's line or the line above "
        "('# heavy: loads torch', '# cycle: rlhf.x imports this module'):\n" + "\n".join(bad)
    )


def test_no_function_imports_what_its_module_already_imports_at_the_top():
    bad = sorted(f"{where}: {', '.join(sorted(again))}" for where, _, _, again in _lazy_project_imports() if again)
    assert not bad, "imported at the module's top already; use that import:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", ["feedback_ui.app", "rlhf_cli.main"])
def test_the_web_app_and_the_cli_start_without_a_model_library(module):
    """A rater's click and ``rlhf --help`` never wait on torch: only workers' children load models."""
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not done.stdout.split(), f"importing {module} loads {done.stdout.strip()}"


def test_no_module_is_over_500_lines():
    long = sorted(
        f"{path.relative_to(ROOT)}: {n}"
        for path in _modules().values()
        if (n := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES
    )
    assert not long, "split these modules:\n" + "\n".join(long)


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("rlhf.mod", "import celery\n", {"celery"}),
        (
            "rlhf.mod",
            "def f():\n    from workers.dispatch import job_queue\n",
            {"workers.dispatch", "workers.dispatch.job_queue"},
        ),
        ("rlhf.mod", "from . import db\n", {"rlhf", "rlhf.db"}),
        ("rlhf.jobs.mod", "from ..services import runs\n", {"rlhf.services", "rlhf.services.runs"}),
    ],
)
def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path, module, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert _imports(path, module) == expected


def test_the_function_import_reader_sees_reasons_and_repeats(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(
        "from rlhf import db\n"
        "def f():\n"
        "    from rlhf.db import get_engine\n"
        "    # heavy: loads torch\n"
        "    from rlhf.training.sft import train_sft\n"
        "    import json\n"
        "    from rlhf.settings import get_settings  # cycle: rlhf.settings imports this module\n"
        "    from rlhf.errors import ConfigError\n"
    )
    assert _function_imports(path, "rlhf.mod", _modules()) == [
        (3, {"rlhf.db"}, False, {"rlhf.db"}),
        (5, {"rlhf.training.sft"}, True, set()),
        (7, {"rlhf.settings"}, True, set()),
        (8, {"rlhf.errors"}, False, set()),
    ]


def test_the_cycle_finder_finds_a_cycle_round_three_modules():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

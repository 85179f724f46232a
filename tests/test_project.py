"""The project's own contracts: CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_block = next(b for b in blocks if "pytest" in b)
    install, test = (part.strip() for part in test_block.split("&&"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert install.replace('"', "") in ci.replace('"', "").replace("-q ", "")
    assert re.search(rf"^{re.escape(test)}$", ci, flags=re.M)


def package_imports(root: Path = ROOT, package_name: str = "warmup_bench"
                    ) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (parsed, not run)."""
    import ast

    package = root / package_name
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else [])) \
                    if node.level else node.module or ""
                submodules = [f"{module}.{a.name}" for a in node.names
                              if f"{module}.{a.name}" in modules]
                # `from . import plots` imports the module plots, not names of the package
                candidates = submodules if len(submodules) == len(node.names) else \
                    [module, *submodules]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of the import graph of size above one."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
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
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_inside_the_package() -> None:
    """No import cycle. Every import counts: those inside functions and TYPE_CHECKING
    blocks, and a package's imports of its own children (a child importing its
    package's names then closes a cycle: the package is half-initialised while the child
    runs)."""
    assert import_cycles(package_imports()) == []


def test_the_cycle_check_sees_imports_inside_functions_and_of_a_package(tmp_path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import x\n")  # function-level
    (package / "sub" / "__init__.py").write_text("from .leaf import y\n")
    (package / "sub" / "leaf.py").write_text("from ..sub import z\n")  # its own package
    (package / "c.py").write_text("from . import a\n")  # a module, not the package's names
    assert sorted(import_cycles(package_imports(tmp_path, "pkg"))) == [
        ["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.leaf"]]


@pytest.mark.slow
def test_every_module_imports_on_its_own() -> None:
    """Every module imported first in an interpreter of its own (forked from one that has
    imported only the third-party libraries, so this takes seconds): an import cycle that
    only bites in one order shows up here."""
    import subprocess
    import sys

    code = """
import importlib, os, sys
import matplotlib, numpy, pandas, rich, torch, typer  # third-party only: fast children
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as error:
            print(name, repr(error), flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(name)
sys.exit(1 if failed else 0)
"""
    modules = sorted(m for m in package_imports() if m != "warmup_bench.__main__")  # runs
    result = subprocess.run([sys.executable, "-c", code, *modules],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_modules_stay_small() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for p in (ROOT / "warmup_bench").rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
    assert sizes["warmup_bench/cli.py"] <= 350


@pytest.mark.slow
def test_a_built_wheel_ships_the_grids_and_sweeps_one_by_name(tmp_path) -> None:
    """A plain (non-editable) install of the built wheel, run outside the repository:
    `list experiments` lists the grids that ship in the package, and `sweep digits` finds
    the demo grid by name and trains it (its runs cut to one epoch here)."""
    import json
    import subprocess
    import sys
    import venv

    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", "-w", wheels, ROOT],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # torch etc. from here
    python = env_dir / "bin" / "python"
    (wheel,) = wheels.glob("warmup_bench-*.whl")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps",
                                "--no-index", "--force-reinstall", wheel],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    away = tmp_path / "elsewhere"
    away.mkdir()

    # nothing of this checkout on the path: no PYTHONPATH, run from another folder
    clean = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONNOUSERSITE": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([python, "-m", "warmup_bench", *args], cwd=away,
                              capture_output=True, text=True, timeout=600, env=clean)
        assert done.returncode == 0, done.stderr
        return done

    where = subprocess.run([python, "-c", "import warmup_bench; print(warmup_bench.__file__)"],
                           cwd=away, capture_output=True, text=True, timeout=60, env=clean)
    assert str(env_dir) in where.stdout, where.stdout  # the wheel's copy, not this checkout
    listed = cli("list", "experiments").stdout
    assert "digits" in listed and "shakespeare-warmups" in listed and "60" in listed
    swept = cli("sweep", "digits", "--epochs", "1", "--jobs", "2", "--out", "results").stdout
    assert "16 runs" in swept and "done: 16 complete" in swept
    summaries = list((away / "results" / "digits").glob("*/summary.json"))
    assert len(summaries) == 16
    assert all(json.loads(p.read_text())["status"] == "complete" for p in summaries)

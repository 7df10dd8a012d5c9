"""The package's layout rules, checked on its import graph (every import, function-level ones too).

- no import circles;
- no engine module imports a study package (the chapters plug in through
  ``ddrepro.studies``: entry points, not imports);
- a study package imports no other study package, except a dependency stated in
  ``STUDY_DEPENDENCIES`` (none today);
- no package file over ``MAX_LINES`` lines (one idea per file).

The checker is tested on planted trees too, so the rules can fail.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from ddrepro.studies import study_packages

PACKAGE = Path(__file__).resolve().parent.parent / "ddrepro"
MAX_LINES = 400
# The cross-chapter page (book/06_across) asks questions that take two chapters' code at once.
STUDY_DEPENDENCIES: dict[str, set[str]] = {
    "ddrepro.across": {"ddrepro.privacy", "ddrepro.poisoning", "ddrepro.bias"},
}


def declared_studies() -> list[str]:
    """The study packages: those installed (entry points) and those ``pyproject.toml`` declares
    (an installed copy's metadata lags an added study until ``pip install -e .`` runs again)."""
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["ddrepro.studies"].values()
    return list(dict.fromkeys([*study_packages(), *declared]))


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package directory ``root``."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a package ``__init__`` counts as its package)."""
    modules = module_files(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for name in names:
                target = resolve(name)
                if target and target != module:
                    deps.add(target)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles among modules; a package's ``__init__`` re-exporting its own modules is not one."""
    def edges(module: str) -> set[str]:
        # `pkg/__init__` importing `pkg.x` is how a package exposes x: only the reverse counts.
        return {d for d in graph.get(module, ()) if not d.startswith(module + ".")}

    found, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(edges(module)):
            if state.get(dep) == 1:
                found.append(stack[stack.index(dep):] + [dep])
            elif not state.get(dep):
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module)
    return found


def study_of(module: str, studies: list[str]) -> str | None:
    return next((s for s in studies if module == s or module.startswith(s + ".")), None)


def layer_violations(graph: dict[str, set[str]], studies: list[str],
                     allowed: dict[str, set[str]]) -> list[str]:
    """Imports that go from the engine up to a study, or across studies without a stated reason."""
    problems = []
    for module, deps in sorted(graph.items()):
        own = study_of(module, studies)
        for dep in sorted(deps):
            other = study_of(dep, studies)
            if other is None or other == own:
                continue
            if own is None:
                problems.append(f"engine module {module} imports study module {dep}")
            elif other not in allowed.get(own, set()):
                problems.append(f"study module {module} imports another study's module {dep}")
    return problems


def long_files(root: Path, limit: int) -> list[str]:
    return [f"{path.relative_to(root.parent)} ({n} lines)" for path in sorted(root.rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > limit]


# -- the package ------------------------------------------------------------------------------

def test_the_studies_are_declared_and_are_packages_of_ddrepro():
    studies = declared_studies()
    assert {"ddrepro.basics", "ddrepro.privacy", "ddrepro.poisoning", "ddrepro.bias",
            "ddrepro.effects", "ddrepro.across"} <= set(studies)
    modules = module_files(PACKAGE)
    assert all(s in modules and modules[s].name == "__init__.py" for s in studies)


def test_the_package_has_no_import_circles():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_engine_imports_no_study_and_studies_import_each_other_only_as_stated():
    assert layer_violations(import_graph(PACKAGE), declared_studies(), STUDY_DEPENDENCIES) == []


def test_no_package_file_outgrows_one_idea():
    assert long_files(PACKAGE, MAX_LINES) == []


# -- the checker fails on planted trees ---------------------------------------------------------

def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "ddrepro" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "ddrepro"


def test_a_planted_circle_is_found(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "",
        "profiles.py": "from .tuning import StepSizeChoice\n",
        "tuning.py": "def f():\n    from . import grids  # function-level imports count too\n",
        "grids.py": "from .profiles import Profile\n",
    })
    found = cycles(import_graph(root))
    assert found and set(found[0]) == {"ddrepro.profiles", "ddrepro.tuning", "ddrepro.grids"}


def test_a_package_init_exposing_its_modules_is_no_circle(tmp_path):
    root = _plant(tmp_path, {"__init__.py": "", "bias/__init__.py": "from . import grids\n",
                             "bias/grids.py": "from ..grids import register\n", "grids.py": ""})
    assert cycles(import_graph(root)) == []


@pytest.mark.parametrize("files, expected", [
    ({"grids.py": "from .bias.study import cells\n"}, "engine module ddrepro.grids imports study module"),
    ({"grids.py": "def f():\n    from .bias import study\n"}, "engine module ddrepro.grids imports study"),
    ({"poisoning/x.py": "from ..bias.study import cells\n"}, "imports another study's module ddrepro.bias"),
])
def test_planted_layer_violations_are_found(tmp_path, files, expected):
    base = {"__init__.py": "", "grids.py": "", "bias/__init__.py": "", "bias/study.py": "",
            "poisoning/__init__.py": ""}
    root = _plant(tmp_path, {**base, **files})
    problems = layer_violations(import_graph(root), ["ddrepro.bias", "ddrepro.poisoning"], {})
    assert any(expected in p for p in problems), problems
    stated = layer_violations(import_graph(root), ["ddrepro.bias", "ddrepro.poisoning"],
                              {"ddrepro.poisoning": {"ddrepro.bias"}})
    assert not any("another study" in p for p in stated)


def test_a_long_file_is_found(tmp_path):
    root = _plant(tmp_path, {"__init__.py": "", "big.py": "x = 1\n" * (MAX_LINES + 1)})
    assert long_files(root, MAX_LINES) == [f"ddrepro/big.py ({MAX_LINES + 1} lines)"]

"""The wheel holds what the installed code needs: every package it imports (lazy imports
inside functions too), every data file tracked beside the code, and only declared
third-party dependencies; and its modules import from the wheel alone."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evalkeeper", "evaluators", "tasks", "flows", "deployments")


def _first_party() -> set[str]:
    """Top-level packages of this checkout (tests and benchmarks included: packaged code
    must not import them)."""
    return {p.parent.name for p in ROOT.glob("*/__init__.py")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH; install it (`pip install uv`) to build the wheel"
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [uv, "build", "--wheel", "--offline", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"uv build --wheel failed:\n{done.stdout}\n{done.stderr}"
    wheels = list(out.glob("evalkeeper-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}: {sorted(p.name for p in out.iterdir())}"
    return wheels[0]


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def _modules(names: set[str]) -> set[str]:
    """Dotted module names in the wheel (`a/b/__init__.py` is `a.b`)."""
    mods = set()
    for name in names:
        if name.endswith(".py") and ".dist-info/" not in name:
            parts = PurePosixPath(name).with_suffix("").parts
            mods.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return mods


def _imports(wheel: Path, names: set[str]) -> list[tuple[str, int, str]]:
    """(file, line, absolute module) for every import statement of every module."""
    found = []
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(n for n in names if n.endswith(".py")):
            package = list(PurePosixPath(name).parent.parts)
            for node in ast.walk(ast.parse(zf.read(name), filename=name)):
                if isinstance(node, ast.Import):
                    found += [(name, node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = package[: len(package) - node.level + 1] if node.level else []
                    module = ".".join([*base, *([node.module] if node.module else [])])
                    found.append((name, node.lineno, module))
                    # `from pkg import sub` may name a submodule
                    found += [(name, node.lineno, f"{module}.{a.name}?") for a in node.names]
    return found


def test_the_runtime_packages_are_in_the_wheel(names: set[str]) -> None:
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names, f"package {package} is missing from the wheel"
    assert "deployments/schedules.py" in names


def test_every_first_party_import_resolves_inside_the_wheel(wheel: Path, names: set[str]) -> None:
    modules = _modules(names)
    first_party = _first_party()
    missing = []
    for file, line, module in _imports(wheel, names):
        optional = module.endswith("?")  # an attribute, unless it is a submodule
        module = module.rstrip("?")
        if module.split(".")[0] not in first_party or optional:
            continue
        if module not in modules:
            missing.append(f"{file}:{line}: imports {module}, which the wheel does not hold")
    assert not missing, "\n".join(missing)


def test_third_party_imports_are_declared_dependencies(wheel: Path, names: set[str]) -> None:
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())

    def norm(dist: str) -> str:
        return re.sub(r"[-_.]+", "-", dist).lower()

    declared = {
        norm(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0])
        for r in meta.get_all("Requires-Dist") or []
    }
    providers = importlib.metadata.packages_distributions()
    first_party = _first_party()
    undeclared = []
    for file, line, module in _imports(wheel, names):
        top = module.rstrip("?").split(".")[0]
        if not top or top in first_party or top in sys.stdlib_module_names or module.endswith("?"):
            continue
        dists = {norm(d) for d in providers.get(top, [])}
        if not dists & declared:
            undeclared.append(
                f"{file}:{line}: imports {top} (from {sorted(dists) or 'no installed package'}), "
                "not a dependency in pyproject.toml [project] dependencies"
            )
    assert not undeclared, "\n".join(undeclared)


def test_every_tracked_data_file_beside_the_code_is_in_the_wheel(names: set[str]) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--", *PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    data = [p for p in tracked if not p.endswith(".py")]
    assert "evaluators/judges/prompts/factual_match.md" in data  # the judges' prompts
    missing = [p for p in data if p not in names]
    assert not missing, f"tracked beside the code but not in the wheel: {missing}"


def test_the_modules_import_from_the_wheel_alone(
    wheel: Path, names: set[str], tmp_path: Path
) -> None:
    """Unpacked in tmp, with the checkout taken off sys.path, every module imports and
    comes from the unpacked wheel; the console script's target exists."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
        entry_points = zf.read(
            next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    assert "evalkeeper = evalkeeper.entry:main" in entry_points
    modules = sorted(m for m in _modules(names) if not m.endswith("__main__"))
    script = (
        "import importlib, sys\n"
        f"sys.path = [p for p in sys.path if p not in ('', {str(ROOT)!r})]\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "bad = []\n"
        f"for name in {modules!r}:\n"
        "    mod = importlib.import_module(name)\n"
        f"    if not mod.__file__.startswith({str(site)!r}):\n"
        "        bad.append(f'{name} came from {mod.__file__}')\n"
        "from evalkeeper.cli import main\n"
        "from evaluators.judges._definition import PROMPTS_DIR\n"
        "assert sorted(PROMPTS_DIR.glob('*.md')), f'no judge prompts in {PROMPTS_DIR}'\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_console_script_s_module_imports_no_command_line() -> None:
    """Spawned worker processes import the console script's module again (multiprocessing's
    `spawn`): it must not pull in the command line and its heavy imports."""
    code = (
        "import sys, evalkeeper.entry\n"
        "heavy = [m for m in ('evalkeeper.cli', 'typer', 'scipy', 'polars', 'duckdb', "
        "'prefect') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""

"""The layers of vschaos only point down (docs/ARCHITECTURE.md, section 1), and no module is over 400 lines.

Every ``import`` in every module of the package (inside functions too) is read with ``ast``: a
module may import its own subpackage and the layers strictly below its own, nothing else. A module
longer than ``MAX_MODULE_LINES`` is split by responsibility (the house rules).
"""
import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

import vschaos

PACKAGE_DIR = Path(vschaos.__file__).resolve().parent
MAX_MODULE_LINES = 400

# Bottom first. Subpackages (and top-level modules) in one layer may not import each other.
LAYERS: Tuple[Set[str], ...] = (
    {"io", "util", "notes", "configs", "threads", "filenames"},  # leaves: nothing from vschaos
    {"dsp", "host"},                     # host runs any nn~ model, so it needs nothing but the leaves
    {"models", "data"},
    {"pitch"},
    {"training"},
    {"generation"},
    {"export"},
    {"cli"},
)


def layer_of(part: str) -> int:
    for index, members in enumerate(LAYERS):
        if part in members:
            return index
    raise KeyError(part)


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, package_dir: Path) -> List[Tuple[int, str]]:
    """``(line, absolute module name)`` of every import of the package in one file."""
    root = package_dir.name
    name = module_name(path, package_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == root:  # from vschaos import io: the names are modules
                found += [(node.lineno, f"{root}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, target) for line, target in found if target.split(".")[0] == root]


def import_edges(package_dir: Path) -> Dict[str, List[Tuple[int, str, str]]]:
    """Per file (relative path), ``(line, importing part, imported part)`` for every import between
    parts of the package (a part = a subpackage or a top-level module)."""
    edges: Dict[str, List[Tuple[int, str, str]]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        source = module_name(path, package_dir).split(".")
        if len(source) < 2:
            continue  # the package's own __init__
        for line, target in imported_modules(path, package_dir):
            target_parts = target.split(".")
            if len(target_parts) < 2:
                continue
            edges.setdefault(str(path.relative_to(package_dir.parent)), []).append(
                (line, source[1], target_parts[1]))
    return edges


def layer_violations(package_dir: Path) -> List[str]:
    """One line per import that is not down the layers or within its own part."""
    problems = []
    for file, edges in import_edges(package_dir).items():
        for line, source, target in edges:
            if source == target:
                continue
            try:
                source_layer, target_layer = layer_of(source), layer_of(target)
            except KeyError as error:
                problems.append(f"{file}:{line}: '{error.args[0]}' is in no layer: add it to LAYERS")
                continue
            if target_layer >= source_layer:
                direction = "sideways" if target_layer == source_layer else "upward"
                problems.append(f"{file}:{line}: {source} imports {target} ({direction})")
    return problems


def long_modules(package_dir: Path, limit: int = MAX_MODULE_LINES) -> List[str]:
    """One line per module of the package (any ``.py`` under ``package_dir``) longer than ``limit`` lines."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > limit:
            problems.append(f"{path.relative_to(package_dir.parent)}: {lines} lines, more than {limit}: "
                            f"split it by responsibility")
    return problems


def test_no_module_of_the_package_is_over_the_line_limit():
    assert long_modules(PACKAGE_DIR) == []


def test_a_module_one_line_over_the_limit_is_reported_with_its_length(tmp_path):
    package = tmp_path / "vschaos"
    write(package / "__init__.py", "")
    write(package / "dsp" / "__init__.py", "x = 1\n" * MAX_MODULE_LINES)
    write(package / "dsp" / "long.py", "x = 1\n" * (MAX_MODULE_LINES + 1))
    write(package / "export" / "longer.py", "\n" * 500)
    assert long_modules(package) == [
        "vschaos/dsp/long.py: 401 lines, more than 400: split it by responsibility",
        "vschaos/export/longer.py: 500 lines, more than 400: split it by responsibility",
    ]


def test_every_import_of_the_package_points_down_the_layers():
    assert layer_violations(PACKAGE_DIR) == []


def test_every_part_of_the_package_has_a_layer():
    parts = {path.stem if path.is_file() else path.name
             for path in PACKAGE_DIR.iterdir()
             if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()}
    placed = set().union(*LAYERS)
    assert parts - placed == set()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_upward_sideways_and_unplaced_imports_are_reported_with_file_and_line(tmp_path):
    package = tmp_path / "vschaos"
    write(package / "__init__.py", "")
    write(package / "util.py", "import math\n")
    write(package / "dsp" / "__init__.py", "")
    write(package / "dsp" / "core.py", "from vschaos import util\nfrom . import other\n\n"
                                        "def f():\n    from vschaos.cli import train\n")
    write(package / "dsp" / "other.py", "")
    write(package / "host" / "__init__.py", "from ..dsp import core\n")
    write(package / "cli" / "__init__.py", "")
    write(package / "cli" / "train.py", "import vschaos.dsp.core\nfrom vschaos.extras import thing\n")
    assert sorted(layer_violations(package)) == [
        "vschaos/cli/train.py:2: 'extras' is in no layer: add it to LAYERS",
        "vschaos/dsp/core.py:5: dsp imports cli (upward)",
        "vschaos/host/__init__.py:1: host imports dsp (sideways)",
    ]


@pytest.mark.parametrize("package", ["vschaos.dsp", "vschaos.pitch", "vschaos.host"])
def test_every_lazy_export_resolves_to_the_object_its_module_defines(package):
    """The lazy packages list their names by hand (vschaos.util.lazy_exports): each must still exist where listed."""
    import importlib

    module = importlib.import_module(package)
    assert module.__all__ and set(module.__all__) <= set(dir(module))
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        getattr(module, "no_such_name")

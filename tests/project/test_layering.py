"""The layering rules of DESIGN.md, checked on the source."""

import ast

import pytest

from tests.helpers import ROOT


def imported_modules(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["synth", "filters", "train", "selftaught"])
def test_ml_layers_never_import_dagster_or_the_wiring(package):
    for path, names in imported_modules(package).items():
        assert not names & {"dagster", "assets", "pipelines"}, (
            f"{path} imports {names & {'dagster', 'assets', 'pipelines'}}"
        )


def test_assets_hold_no_ml_code():
    for path, names in imported_modules("assets").items():
        assert not names & {"torch", "transformers", "trl", "peft"}, f"{path} imports an ML library directly"


def test_schemas_are_declared_in_one_module():
    for package in ["synth", "filters", "train", "assets", "pipelines"]:
        for path in (ROOT / package).rglob("*.py"):
            assert "pl.Schema(" not in path.read_text(), f"{path} declares a schema; use selftaught.schemas"


PACKAGES = ("selftaught", "synth", "filters", "train", "assets", "pipelines")


def module_imports() -> dict[str, set[str]]:
    """Each project module and the project modules it imports (at any level of the file)."""
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            deps = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and node.level == 0
                    and node.module.split(".")[0] in PACKAGES
                ):
                    deps |= (
                        {f"{node.module}.{a.name}" for a in node.names} if node.module in PACKAGES else {node.module}
                    )
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = deps
    return out


def test_no_import_cycles():
    graph = module_imports()
    cycles = []

    def walk(start, node, path):
        for dep in graph.get(node, ()):
            if dep == start:
                cycles.append(" -> ".join([*path, start]))
            elif dep in graph and dep not in path:
                walk(start, dep, [*path, dep])

    for module in graph:
        walk(module, module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles))[:10])

"""The package's layers, as the README's "How the code is laid out" draws them: imports only run downwards."""

import ast
from pathlib import Path

import magicktune

PACKAGE = Path(magicktune.__file__).parent

#: Bottom up. A module may import modules of lower layers only (inside the policy package, its own order).
LAYERS = [
    {"errors"},
    {"environment"},
    {"units", "signals"},
    {"options"},
    {"magick"},
    {"profile"},
    {"atomic", "safepaths"},
    {"policy"},
    {"resources"},
    {"wandlib", "gif"},
    {"palette", "lzw"},
    {"quantizer"},
    {"frames", "processpool", "shown"},
    {"encoder"},
    {"capture", "progress"},
    {"writers"},
    {"cli", "demo", "__init__", "__main__"},
]
POLICY_LAYERS = [{"__init__"}, {"audit"}, {"build"}, {"effective", "presets"}, {"xml", "rights"}]  # top down


def rank(name, layers):
    return next(index for index, layer in enumerate(layers) if name in layer)


def imported(path):
    """(module path under magicktune, line) for each of our modules `path` imports, function-level imports too."""
    package = ["policy"] if path.parent.name == "policy" else []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            module = [*base, *(node.module.split(".") if node.module else [])]
            if node.module:
                yield ".".join(module), node.lineno
            else:  # from . import a, b
                yield from ((".".join([*module, alias.name]), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("magicktune."):
            yield node.module.split(".", 1)[1], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("magicktune."):
                    yield alias.name.split(".", 1)[1], node.lineno


def test_every_module_is_in_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {"policy"}
    placed = set().union(*LAYERS)
    assert modules <= placed, f"put {sorted(modules - placed)} in a layer here and in the README"
    assert {p.stem for p in (PACKAGE / "policy").glob("*.py")} <= set().union(*POLICY_LAYERS)


def test_imports_only_run_downwards():
    upward = []
    for path in [*PACKAGE.glob("*.py"), *(PACKAGE / "policy").glob("*.py")]:
        me = "policy" if path.parent.name == "policy" else path.stem
        for target, line in imported(path):
            top = target.split(".")[0]
            if top == "policy" and me == "policy":
                inner = target.split(".")[1] if "." in target else "__init__"
                if rank(inner, POLICY_LAYERS) <= rank(path.stem, POLICY_LAYERS):
                    upward.append(f"policy/{path.name}:{line} imports policy.{inner}")
            elif top in set().union(*LAYERS) and me != "__init__" and rank(top, LAYERS) >= rank(me, LAYERS):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {top}")
    assert not upward, "imports against the layers: " + "; ".join(upward)

"""The kernel registry is filled from one place (kernels/__init__.py's FAMILIES) and misses no family."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import ocl_infer.engine.kernels as kernels
from ocl_infer.engine.kernels.registry import KERNELS

KERNELS_DIR = Path(kernels.__file__).parent


def _registering_modules() -> dict[str, set[str]]:
    """module name -> the classes it decorates with `@register`, for every module of kernels/ that has any."""
    found: dict[str, set[str]] = {}
    for path in sorted(KERNELS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    (d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else "") == "register"
                    for d in node.decorator_list):
                found.setdefault(f"{kernels.__name__}.{path.stem}", set()).add(node.name)
    return found


def test_every_registering_module_is_a_listed_family_and_every_class_is_registered() -> None:
    registering = _registering_modules()
    assert {m.__name__ for m in kernels.FAMILIES} == set(registering), "kernels/__init__.py FAMILIES is stale"
    registered = {(cls.__module__, cls.__name__) for cls in KERNELS.values()}
    for module, classes in registering.items():
        for name in classes:
            assert (module, name) in registered, f"{module}.{name} is decorated with @register but not in KERNELS"


def test_importing_the_registry_alone_fills_it() -> None:
    """Whatever a program imports first (here only the registry module), the table is complete."""
    code = ("import json, ocl_infer.engine.kernels.registry as r; "
            "print(json.dumps(sorted(f'{op}/{v}' for op, v in r.KERNELS)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == sorted(f"{op}/{v}" for op, v in KERNELS)


def test_families_import_no_other_family_except_to_subclass_it() -> None:
    """Shared helpers live in base.py and conv_common.py; a family imports another only for a base class
    (conv_winograd4's F(4x4) wrapper extends conv_winograd's)."""
    families = {m.__name__ for m in kernels.FAMILIES}
    for module in kernels.FAMILIES:
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} & families
        bases = {base.__module__ for cls in vars(module).values() if isinstance(cls, type)
                 and cls.__module__ == module.__name__ for base in cls.__mro__[1:]}
        for other in imported - {module.__name__}:
            assert other in bases, f"{module.__name__} imports family {other} without subclassing from it"

"""The layering the code promises, checked from the source: who imports whom, and what a web process loads.

- Every app and `lib` imports only from the layers below it, not even inside functions:
  `lib` imports no app; `documents` imports `lib`; `annotation` imports `documents` and `lib`; `training`
  imports `annotation`, `documents` and `lib`; `config` imports everything. A lower layer reaches a higher one
  only through a setting's dotted path: `documents` queues ingestion by DOCLOOP_INGEST_JOB, and `annotation`
  asks for prediction states (DOCLOOP_PREDICTIONS_STATE) and sends a reviewed document on
  (DOCLOOP_REVIEW_FINISHED_HOOK) the same way.
- The one deliberate exception: `annotation`'s models hold foreign keys to `training.ModelVersion` (which
  version suggested an annotation or a class), written as the string "training.ModelVersion", never an
  import. Moving ModelVersion below `annotation` would move the model registry's central table and its
  migrations for a reference that needs no code; the test pins the exception to those strings in
  annotation/models.py.
- Nothing imports `training.jobs`: services queue jobs by dotted path, so jobs and services form no circle,
  and no module-level import circle exists anywhere in the project.
- `training.ml` imports without Django; web requests (URLs, views, admin) never load torch, transformers
  or datasets.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from django.conf import settings

BASE = Path(settings.BASE_DIR)
PACKAGES = ("config", "documents", "annotation", "training", "lib")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (BASE / package).rglob("*.py"):
            parts = list(path.relative_to(BASE).with_suffix("").parts)
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """Project modules imported by a file (`from a.b import c` counts as a.b.c when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:  # also imports inside module-level if/try blocks
        nodes = [n for top in tree.body for n in ast.walk(top)
                 if not isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                names.add(candidate if candidate in MODULES else node.module)
    return {name for name in names if name.split(".")[0] in PACKAGES}


# What each top-level package may import from the project (itself included), lowest layer first.
LAYERS = {
    "lib": {"lib"},
    "documents": {"documents", "lib"},
    "annotation": {"annotation", "documents", "lib"},
    "training": {"training", "annotation", "documents", "lib"},
    "config": set(PACKAGES),
}


def test_every_app_and_lib_imports_only_the_layers_below_it():
    assert set(LAYERS) == set(PACKAGES)
    offenders = sorted(
        (module, imported)
        for module, path in MODULES.items()
        for imported in _imports(path, module_level_only=False)
        if imported.split(".")[0] not in LAYERS[module.split(".")[0]]
    )
    assert offenders == []


def test_documents_imports_nothing_from_training_or_annotation():
    offenders = {
        (module, imported)
        for module, path in MODULES.items() if module.split(".")[0] == "documents"
        for imported in _imports(path, module_level_only=False)
        if imported.split(".")[0] in {"training", "annotation"}
    }
    assert not offenders


def _references_to(package: str, path: Path) -> list[str]:
    """String literals in a file that name something of `package` ("training.ModelVersion", a dotted path)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.startswith(f"{package}.") and " " not in node.value]


def test_annotation_refers_to_training_only_through_the_model_version_foreign_keys():
    """The one deliberate exception to the layering (see the module docstring and docs/architecture.md)."""
    references = {
        (module, text)
        for module, path in MODULES.items() if module.split(".")[0] == "annotation"
        for text in _references_to("training", path)
    }
    assert references == {("annotation.models", "training.ModelVersion")}
    assert settings.DOCLOOP_PREDICTIONS_STATE.startswith("training.")
    assert settings.DOCLOOP_REVIEW_FINISHED_HOOK.startswith("training.")



def test_nothing_imports_the_jobs_module_they_are_queued_by_dotted_path():
    importers = {module for module, path in MODULES.items()
                 if "training.jobs" in _imports(path, module_level_only=False)}
    assert importers == set()
    assert settings.DOCLOOP_INGEST_JOB == "training.jobs.document_ingest"


def test_no_module_level_import_circle():
    graph = {module: _imports(path, module_level_only=True) & set(MODULES) for module, path in MODULES.items()}
    # Tarjan's strongly connected components: any component of more than one module is a circle.
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in graph:
        if module not in index:
            visit(module)
    assert circles == []


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=BASE, capture_output=True,
                          text=True, timeout=300)


def test_the_ml_package_imports_and_works_where_django_cannot_be_imported():
    result = _run("""
        import importlib.abc, pkgutil, sys

        class NoDjango(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "django" or name.startswith("django."):
                    raise ImportError("django must not be imported here")

        sys.meta_path.insert(0, NoDjango())
        import training.ml
        for info in pkgutil.iter_modules(training.ml.__path__):
            __import__(f"training.ml.{info.name}")
        from training.ml.bio import bio_to_spans
        from training.ml.metrics import span_scores
        from training.ml.windows import split_windows
        assert split_windows(["a", "b."], [False, True], [1, 1], 8) == [(0, 2)]
        assert span_scores([bio_to_spans(["B-X", "I-X"])], [[(0, 2, "X")]])["f1"] == 1.0
        assert not any(m == "django" or m.startswith("django.") for m in sys.modules)
        print("ok", len([m for m in sys.modules if m.startswith("training.ml")]))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_urls_views_and_admin_load_no_ml_library():
    result = _run("""
        import importlib, os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django
        django.setup()
        from django.urls import get_resolver
        get_resolver().url_patterns  # imports config.urls and, through it, every view module
        for app in ("documents", "annotation", "training"):
            for module in ("views", "admin", "forms", "urls", "selectors", "services"):
                try:
                    importlib.import_module(f"{app}.{module}")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{app}.{module}":
                        raise
        loaded = sorted(m for m in ("torch", "transformers", "datasets", "peft") if m in sys.modules)
        print("loaded:", ",".join(loaded))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded:"

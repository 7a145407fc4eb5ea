"""The package imports cleanly and registers every public class."""

import json
import subprocess
import sys

import keras

import keras_stageshow as ks

PUBLIC = [
    "Preprocess", "Rehearsal", "Adjust", "CrewDiscussion", "PracticeRound",
    "StageShow", "AskQuestions", "WatchShow", "AssessmentDiscussion",
    "AssessmentRound", "OscarAssessment", "Voting", "Transformer",
    "TransformerSchedule", "MaskedSparseCategoricalCrossentropy",
    "MaskedAccuracy",
]


def test_every_public_class_is_registered_serializable():
    for name in PUBLIC:
        cls = getattr(ks, name)
        assert keras.saving.get_registered_name(cls) == f"keras_stageshow>{name}"
        assert keras.saving.get_registered_object(f"keras_stageshow>{name}") is cls


def test_import_changes_no_global_setting_and_stays_light():
    script = (
        "import json, sys, keras;"
        "before = (keras.config.dtype_policy().name, keras.config.floatx(),"
        " keras.config.image_data_format(), keras.config.backend());"
        "import keras_stageshow;"
        "after = (keras.config.dtype_policy().name, keras.config.floatx(),"
        " keras.config.image_data_format(), keras.config.backend());"
        "heavy = [m for m in ('keras_hub', 'tensorflow_text') if m in sys.modules];"
        "print(json.dumps([before, after, heavy]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    before, after, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after
    assert heavy == []  # tokenizers and samplers load only when used


def test_module_layout_one_public_layer_per_module():
    import importlib

    for name in PUBLIC[:12]:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in name)[1:]
        module = importlib.import_module(f"keras_stageshow.layers.{snake}")
        assert getattr(module, name) is getattr(ks, name)


def _package_imports():
    """Module -> the package's modules it imports, read from the source
    (imports inside functions included: a lazy import that dodges a cycle
    is still a cycle in the design; a package's `__init__` counts as the
    module that imports its re-exports)."""
    import ast
    import pathlib

    root = pathlib.Path(ks.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(("keras_stageshow", *path.relative_to(root).with_suffix("").parts))
        modules[name.removesuffix(".__init__")] = path

    def owner(name):  # `a.b.c` -> the longest prefix that is a module
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("keras_stageshow") and owner(target) not in ("", name):
                    # A package's own __init__ is not an edge from its modules.
                    if not name.startswith(owner(target) + "."):
                        graph[name].add(owner(target))
    return graph, modules


def test_the_package_imports_form_no_cycle():
    import graphlib

    graph, _ = _package_imports()
    assert len(graph) > 40 and graph["keras_stageshow.models.translator"]
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_no_module_is_over_400_lines():
    _, modules = _package_imports()
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()}
    assert {name: n for name, n in sizes.items() if n > 400} == {}

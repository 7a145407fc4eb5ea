"""The models: `Transformer` (the backbone: the network), `Translator` (the
task: text in, text out) and `TranslatorPreprocessor` (texts <-> ids).

Imported when first used (PEP 562), so that importing one module of this
package (the export imports `translator_files`) does not import the
translator, which imports the export.
"""

import importlib

_PUBLIC = {
    "Transformer": "keras_stageshow.models.transformer",
    "Translator": "keras_stageshow.models.translator",
    "TranslatorPreprocessor": "keras_stageshow.models.translator_preprocessor",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'keras_stageshow.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC})

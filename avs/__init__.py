"""avs: a TRECVID Ad-hoc Video Search toolkit.

The objects a notebook needs are here (``avs.__all__``, docs/api.md); each is imported on first use, so
``import avs`` stays cheap and pulls in torch only when a model is touched.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "InputError": "avs.errors",
    "Topic": "avs.formats.topics",
    "TopicSet": "avs.formats.topics",
    "read_topics": "avs.formats.topics",
    "Run": "avs.formats.runs",
    "RunInfo": "avs.formats.runs",
    "read_run": "avs.formats.runs",
    "write_xml": "avs.formats.runs",
    "write_trec": "avs.formats.runs",
    "open_store": "avs.formats.store",
    "write_store": "avs.formats.store",
    "load_model": "avs.models",
    "build_index": "avs.engine.index",
    "Searcher": "avs.engine.searcher",
    "search_topics": "avs.engine.searcher",
    "evaluate_runs": "avs.eval.infap",
    "infap_table": "avs.eval.infap",
    "TrainConfig": "avs.train",
    "train": "avs.train",
    "demo": "avs.demo",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'avs' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if name == "demo" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

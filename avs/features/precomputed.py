"""Text features computed elsewhere and read by caption or topic id (a fine-tuned CLIP's text vectors, any
other ``precomputed`` feature): a BigFile folder or an avs store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from avs.errors import InputError, first_few
from avs.features.importers import read_bigfile
from avs.formats.store import open_store

# ----------------------------------------------------------------------------------------------------------
# Precomputed text vectors (by caption id or topic id)


class PrecomputedTextFeatures:
    """Vectors keyed by caption or topic id, from a RUC BigFile folder or one feature of an avs store."""

    def __init__(self, path: str | os.PathLike, feature: str | None = None):
        self.path = Path(path)
        self._store_rows: dict[str, int] | None = None
        if self.path.is_dir():
            if feature is not None:
                raise InputError(self.path, "a BigFile folder holds one feature; do not name one")
            self._bigfile = read_bigfile(self.path)
            self._store = None
            self.feature = self.path.name
            self.dim = self._bigfile.dim
            return
        self._bigfile = None
        self._store = open_store(self.path)
        if feature is None:
            if len(self._store.features) != 1:
                self._store.close()
                raise InputError(
                    self.path,
                    f"store holds {len(self._store.features)} features "
                    f"({', '.join(self._store.features)}); name the one to use",
                )
            feature = self._store.features[0]
        if feature not in self._store.dims:
            self._store.close()
            raise InputError(self.path, f"no feature {feature!r} (has: {', '.join(self._store.features)})")
        self.feature = feature
        self.dim = self._store.dims[feature]

    @property
    def ids(self) -> list[str]:
        return self._bigfile.ids if self._bigfile is not None else self._store.ids

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """float32 rows in the order of ``ids``; any id without a vector is an InputError (no fallback)."""
        if self._bigfile is not None:
            index = self._bigfile.index
        else:
            if self._store_rows is None:
                self._store_rows = {i: r for r, i in enumerate(self._store.ids)}
            index = self._store_rows
        missing = [i for i in ids if i not in index]
        if missing:
            raise InputError(
                self.path,
                f"no precomputed {self.feature} vector for {len(missing)} of {len(ids)} "
                f"ids (first: {first_few(missing)})",
            )
        if self._bigfile is not None:
            return self._bigfile.vectors(ids)
        rows = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
        return self._store.get(self.feature, rows, dtype=np.float32)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> "PrecomputedTextFeatures":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

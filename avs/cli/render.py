"""Rendering of result tables for the terminal and for files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pandas is imported by what builds the tables: a command that prints none never pays for it
    import pandas as pd

FORMATS = ("table", "tsv", "csv", "json")


def render(df: "pd.DataFrame", fmt: str) -> str:
    if fmt == "tsv":
        return df.to_csv(sep="\t", index=False)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":  # missing values as null: NaN is not JSON
        records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
        return json.dumps(records, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return _for_terminal(df).to_string(index=False) + "\n"


def _for_terminal(df: pd.DataFrame) -> pd.DataFrame:
    """Floats to four decimals (as NIST prints them), missing values blank."""
    import pandas as pd

    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = [("" if pd.isna(v) else f"{v:.4f}") for v in out[col]]
        else:
            out[col] = out[col].map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else v)
    return out


def emit(df: pd.DataFrame, fmt: str) -> None:
    click.echo(render(df, fmt), nl=False)

"""Rendering of result tables for the terminal and for files."""

from __future__ import annotations

import json

import click
import pandas as pd

FORMATS = ("table", "tsv", "csv", "json")


def render(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "tsv":
        return df.to_csv(sep="\t", index=False)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return json.dumps(df.to_dict(orient="records"), indent=2, ensure_ascii=False) + "\n"
    return df.to_string(index=False) + "\n"


def emit(df: pd.DataFrame, fmt: str) -> None:
    click.echo(render(df, fmt), nl=False)

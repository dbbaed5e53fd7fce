"""Errors a user can cause. One type, shared with ``trec_eval_compat`` so both print alike."""

from trec_eval_compat.errors import InputError

__all__ = ["InputError"]

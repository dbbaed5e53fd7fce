"""NIST's TRECVID evaluation (sample_eval.pl) reproduced in Python, torch-free.

Filled by the evaluation work: readers, xinfAP/infNDCG/iP@K, sample_eval-identical printing.
"""

from .errors import InputError
from .ids import DEFAULT_PREFIX, eval_topic_id, nist_topic_num

__all__ = ["InputError", "DEFAULT_PREFIX", "eval_topic_id", "nist_topic_num"]

"""Evaluation: NIST's xinfAP through ``trec_eval_compat`` with the per-category breakdown, text-to-video
retrieval metrics, run comparison with significance tests, diagnostics of trained models, and plots."""

"""Engine: models applied at collection scale — the one batched encoder, index build, exact top-k search, and
the :class:`~avs.engine.searcher.Searcher` that loads a model and its index once."""

"""avs: a TRECVID Ad-hoc Video Search toolkit."""

__version__ = "0.1.0"

"""Formats: what teams exchange and keep on disk — topics, runs (NIST XML, TREC), shot ids and id lists, the
HDF5 collection store, and the one atomic writer. No torch here."""

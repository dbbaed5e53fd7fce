"""The built-in SIMULATED demo collection (:mod:`avs.demo.synth` writes it, :mod:`avs.demo.builtin` trains and
indexes a LAFF on it). Everything here is simulated and says so."""

from avs.demo.builtin import Demo, build, demo_paths, ensure

__all__ = ["Demo", "build", "demo_paths", "ensure"]

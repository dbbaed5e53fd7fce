"""Per-topic judgment statistics exactly as sample_eval.pl derives them from stratified qrels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class TopicQrels:
    """One topic's judgments.

    ``shots`` maps shot -> (stratum, judgment); the LAST row for a shot wins there, while the per-stratum
    counts count EVERY row (sample_eval.pl does both; NIST files have no duplicate rows anyway).
    """

    topic: str
    shots: dict[str, tuple[str, int]] = field(default_factory=dict)
    pooled: dict[str, int] = field(default_factory=dict)  # N_c: rows per stratum
    sampled: dict[str, int] = field(default_factory=dict)  # n_c: rows with judgment >= 0
    relevant: dict[str, int] = field(default_factory=dict)  # r_c: rows with judgment > 0
    grades: dict[str, dict[int, int]] = field(default_factory=dict)  # stratum -> grade -> rows

    @property
    def strata(self) -> list[str]:
        """Stratum labels in sample_eval's iteration order (plain string sort)."""
        return sorted(self.pooled)

    @property
    def num_rel(self) -> float:
        """Inferred number of relevant shots R̂ = Σ_c r_c·N_c/n_c over strata with n_c > 0."""
        total = 0.0
        for c in self.strata:
            if self.sampled.get(c, 0) != 0:
                total += self.relevant.get(c, 0) * self.pooled[c] / self.sampled[c]
        return total

    def num_rel_per_grade(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for c in self.strata:
            for g in sorted(self.grades.get(c, {}), key=str):
                out[g] = out.get(g, 0.0) + self.grades[c][g] * self.pooled[c] / self.sampled[c]
        return out


def build_qrels(rows: Iterable[tuple[str, str, str, int]]) -> dict[str, TopicQrels]:
    """Group qrels rows (``Qrel`` or plain ``(topic, shot, stratum, judgment)`` tuples) by topic; topic ids are
    compared as exact strings, as sample_eval.pl does."""
    out: dict[str, TopicQrels] = {}
    for topic, shot, stratum, judgment in rows:
        t = out.get(topic)
        if t is None:
            t = out[topic] = TopicQrels(topic)
        t.shots[shot] = (stratum, judgment)
        pooled = t.pooled
        pooled[stratum] = pooled.get(stratum, 0) + 1
        if judgment >= 0:
            t.sampled[stratum] = t.sampled.get(stratum, 0) + 1
            if judgment > 0:
                t.relevant[stratum] = t.relevant.get(stratum, 0) + 1
                per = t.grades.setdefault(stratum, {})
                per[judgment] = per.get(judgment, 0) + 1
    return out

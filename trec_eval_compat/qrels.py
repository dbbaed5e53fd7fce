"""Per-topic judgment statistics exactly as sample_eval.pl derives them from stratified qrels."""

from __future__ import annotations

from dataclasses import dataclass, field

from .io import Qrel


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


def build_qrels(rows: list[Qrel]) -> dict[str, TopicQrels]:
    """Group qrels rows by topic (topic ids are compared as exact strings, as sample_eval.pl does)."""
    out: dict[str, TopicQrels] = {}
    for q in rows:
        t = out.get(q.topic)
        if t is None:
            t = out[q.topic] = TopicQrels(q.topic)
        t.shots[q.shot] = (q.stratum, q.judgment)
        t.pooled[q.stratum] = t.pooled.get(q.stratum, 0) + 1
        if q.judgment >= 0:
            t.sampled[q.stratum] = t.sampled.get(q.stratum, 0) + 1
        if q.judgment > 0:
            t.relevant[q.stratum] = t.relevant.get(q.stratum, 0) + 1
            per = t.grades.setdefault(q.stratum, {})
            per[q.judgment] = per.get(q.judgment, 0) + 1
    return out

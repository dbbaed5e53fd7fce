import numpy as np
import pytest
import torch

from avs.eval.retrieval import (
    caption_relevance,
    metrics_table,
    relevant_positions,
    retrieval_metrics,
    text_video_metrics,
)


def test_hand_checked_example():
    scores = np.array(
        [
            [0.1, 0.9, 0.5, 0.3, 0.7],  # order 1 4 2 3 0: item 2 at position 3
            [0.8, 0.2, 0.6, 0.4, 0.0],
        ]
    )  # order 0 2 3 1 4: items 0, 3 at positions 1, 3
    pos = relevant_positions(scores, [[2], [3, 0]])
    assert [p.tolist() for p in pos] == [[3], [1, 3]]
    m = retrieval_metrics(scores, [[2], [3, 0]])
    assert m["r1"] == 50.0 and m["r5"] == 100.0 and m["r10"] == 100.0
    assert m["medr"] == 2.0 and m["meanr"] == 2.0
    assert m["mir"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["map"] == pytest.approx((1 / 3 + (1 / 1 + 2 / 3) / 2) / 2)
    assert m["queries"] == 2


def test_medr_is_floor_of_median_and_recall_cutoffs():
    # ranks 1, 2, 6, 11 -> median 4 (floor of 4.0); R@5 = 50, R@10 = 75
    n = 12
    scores = -np.tile(np.arange(n, dtype=float), (4, 1))  # item i at position i + 1 for every query
    m = retrieval_metrics(scores, [[0], [1], [5], [10]])
    assert (m["r1"], m["r5"], m["r10"]) == (25.0, 50.0, 75.0)
    assert m["medr"] == 4.0 and m["meanr"] == 5.0
    m2 = retrieval_metrics(scores[:2], [[0], [1]])  # ranks 1, 2 -> median 1.5 -> 1
    assert m2["medr"] == 1.0


def test_ties_are_broken_by_item_index():
    scores = np.full((3, 4), 0.5)
    pos = relevant_positions(scores, [[0], [3], [1, 2]])
    assert [p.tolist() for p in pos] == [[1], [4], [2, 3]]
    # an equal score at a larger index does not push the relevant item down
    pos = relevant_positions(np.array([[0.2, 0.7, 0.7, 0.1]]), [[1]])
    assert pos[0].tolist() == [1]


def _reference(scores, relevant):
    """laff-method §11.1 written out literally: sort each row, mark GT, read positions."""
    ranks, aps = [], []
    for row, rel in zip(scores, relevant):
        order = np.argsort(-row, kind="stable")
        hits = np.where(np.isin(order, rel))[0] + 1
        ranks.append(hits[0])
        aps.append(np.mean([(k + 1) / p for k, p in enumerate(hits)]))
    ranks = np.array(ranks, dtype=float)
    return {
        "r1": 100 * np.mean(ranks <= 1),
        "r5": 100 * np.mean(ranks <= 5),
        "r10": 100 * np.mean(ranks <= 10),
        "medr": np.floor(np.median(ranks)),
        "meanr": ranks.mean(),
        "mir": np.mean(1 / ranks),
        "map": np.mean(aps),
    }


@pytest.mark.parametrize("max_relevant", [3, 12])  # few: counted positions; many: sorted rows
def test_matches_the_literal_definition_on_random_scores(max_relevant):
    rng = np.random.default_rng(max_relevant)
    scores = rng.normal(size=(40, 30)).round(1)  # rounding makes ties
    relevant = [rng.choice(30, size=rng.integers(1, max_relevant + 1), replace=False) for _ in range(40)]
    got = retrieval_metrics(scores, relevant)
    for k, v in _reference(scores, relevant).items():
        assert got[k] == pytest.approx(v), k


def test_map_equals_mir_with_one_relevant_item():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(20, 15))
    m = retrieval_metrics(scores, [[i % 15] for i in range(20)])
    assert m["map"] == pytest.approx(m["mir"])


def test_text_video_both_directions():
    # captions 0,1 -> video 0; caption 2 -> video 1; caption 3 -> video 2; video 3 has no captions
    caption_videos = [0, 0, 1, 2]
    rel, videos = caption_relevance(caption_videos, 4)
    assert rel == [[0, 1], [2], [3]] and videos == [0, 1, 2]
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.3],  # caption 0: video 0 at position 1
            [0.2, 0.9, 0.1, 0.3],  # caption 1: video 0 at position 3
            [0.1, 0.8, 0.3, 0.2],  # caption 2: video 1 at position 1
            [0.1, 0.2, 0.5, 0.6],
        ]
    )  # caption 3: video 2 at position 2
    res = text_video_metrics(scores, caption_videos)
    assert res["t2v"]["queries"] == 4 and res["v2t"]["queries"] == 3
    t2v = res["t2v"]
    assert (t2v["r1"], t2v["r5"], t2v["medr"], t2v["meanr"]) == (50.0, 100.0, 1.0, 1.75)
    assert t2v["mir"] == pytest.approx((1 + 1 / 3 + 1 + 1 / 2) / 4)
    # v2t columns: video 0 (0.9, 0.2, 0.1, 0.1): captions 0, 1 at positions 1, 2 -> AP 1;
    # video 1 (0.1, 0.9, 0.8, 0.2): caption 2 at position 2 -> AP 1/2; video 2 (0.2, 0.1, 0.3, 0.5): caption 3 first
    v2t = res["v2t"]
    assert v2t["map"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert v2t["r1"] == pytest.approx(200 / 3) and v2t["medr"] == 1.0 and v2t["meanr"] == pytest.approx(4 / 3)
    table = metrics_table(res)
    assert list(table.columns) == ["direction", "queries", "R@1", "R@5", "R@10", "MedR", "MeanR", "mIR", "mAP"]
    assert table.direction.tolist() == ["t2v", "v2t"]


def test_bad_ground_truth_is_refused():
    with pytest.raises(ValueError):
        relevant_positions(np.zeros((1, 3)), [[]])
    with pytest.raises(ValueError):
        relevant_positions(np.zeros((1, 3)), [[3]])
    with pytest.raises(ValueError):
        relevant_positions(np.zeros((2, 3)), [[0]])

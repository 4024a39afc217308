"""Bootstrap by counting: per-group tallies and ROC AUC equal the direct computation on the same resamples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from pipelines.evaluation.resampling import RankedGroups, chunk_rows, draws, pack, unpack


def random_rows(n: int, groups: int, seed: int, decimals: int | None = 2):
    """Labels, group codes and scores that depend on both; rounded scores give many ties."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.15 + 0.5 * codes / max(groups - 1, 1)).astype(int)
    p = np.clip(0.4 * y + rng.normal(0.3, 0.2, n), 0, 1)
    return y, codes, (p if decimals is None else np.round(p, decimals))


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, 2), (2, 1)])
def test_weighted_tallies_equal_scikit_learn_per_group(seed, decimals):
    y, codes, p = random_rows(2000, 4, seed, decimals)
    weights = np.random.default_rng(seed + 10).integers(0, 4, (3, len(y)))  # resample multiplicities, zeros too
    layout = RankedGroups.build(codes, 4, y, p, 0.5)

    tallies = layout.tallies(layout.weigh(weights))

    for r, w in enumerate(weights):
        for g in range(4):
            mine = (codes == g) & (w > 0)
            yy, pp, ww = y[mine], p[mine], w[mine]
            (tn, fp), (fn, tp) = confusion_matrix(yy, pp >= 0.5, labels=[0, 1], sample_weight=ww)
            assert tallies.size[r, g] == ww.sum() and tallies.positives[r, g] == ww[yy == 1].sum()
            assert (tallies.true_positives[r, g], tallies.selected[r, g]) == (tp, tp + fp)
            auc = tallies.wins2[r, g] / (2 * tallies.positives[r, g] * tallies.negatives[r, g])
            assert auc == pytest.approx(roc_auc_score(yy, pp, sample_weight=ww), abs=1e-12)


def test_counting_drawn_rows_equals_weighing_by_their_multiplicities():
    y, codes, p = random_rows(700, 3, 3)
    layout = RankedGroups.build(codes, 3, y, p, 0.4)
    idx = np.random.default_rng(5).integers(0, len(y), (6, len(y)))
    multiplicities = np.stack([np.bincount(i, minlength=len(y)) for i in idx])

    counted = layout.tallies(layout.count(layout.cells[idx]))
    weighed = layout.tallies(layout.weigh(multiplicities))

    for field in ("size", "positives", "selected", "true_positives", "wins2"):
        np.testing.assert_array_equal(getattr(counted, field), getattr(weighed, field))


def test_known_answers_perfect_reversed_tied_and_one_class_groups():
    # group 0 separates perfectly, group 1 is reversed, group 2 ties everything, group 3 has no positives,
    # group 4 has no rows at all.
    y = np.array([0, 0, 1, 1] * 3 + [0, 0, 0])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.9, 0.8, 0.2, 0.1, 0.5, 0.5, 0.5, 0.5, 0.3, 0.6, 0.7])
    codes = np.repeat([0, 1, 2, 3], [4, 4, 4, 3])
    layout = RankedGroups.build(codes, 5, y, p, 0.5)

    t = layout.point()

    assert t.size.tolist() == [[4, 4, 4, 3, 0]]
    assert t.positives.tolist() == [[2, 2, 2, 0, 0]]
    assert t.true_positives.tolist() == [[2, 0, 2, 0, 0]]
    assert t.selected.tolist() == [[2, 2, 4, 2, 0]]  # 0.5 is at the threshold: predicted positive
    assert t.wins2.tolist() == [[8, 0, 4, 0, 0]]  # AUC 1, 0 and 1/2 on 2 x 2 pairs; no pairs without positives


def test_chunked_32_bit_draws_are_the_resample_matrix():
    for n, resamples, chunk in [(1, 5, 2), (7, 9, 4), (1000, 11, 3), (50_000, 3, 1)]:
        whole = np.random.default_rng(9).integers(0, n, (resamples, n))

        chunks = list(draws(n, resamples, 9, chunk))

        assert [len(c) for c in chunks] == [min(chunk, resamples - i) for i in range(0, resamples, chunk)]
        np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_chunks_hold_about_the_cell_budget():
    assert chunk_rows(48_000, 2_000_000) == 41
    assert chunk_rows(480_000, 2_000_000) == 4
    assert chunk_rows(5_000_000, 2_000_000) == 1  # never fewer than one resample
    assert chunk_rows(0, 2_000_000) == 2_000_000


def test_two_layouts_packed_in_one_integer_unpack_to_their_own_cells():
    y, codes, p = random_rows(1000, 3, 6)
    first = RankedGroups.build(codes, 3, y, p, 0.5)
    second = RankedGroups.build(np.zeros_like(codes), 1, y, 1 - p, 0.3)
    idx = np.random.default_rng(1).integers(0, len(y), (2, len(y)))

    both = unpack(pack([first, second])[idx], 2)
    (alone,) = unpack(pack([second])[idx], 1)

    np.testing.assert_array_equal(both[0], first.cells[idx])
    np.testing.assert_array_equal(both[1], second.cells[idx])
    np.testing.assert_array_equal(alone, second.cells[idx])


def test_nan_scores_are_refused_with_the_count():
    with pytest.raises(ValueError, match="2 of 4 scores are NaN"):
        RankedGroups.build(np.zeros(4, int), 1, np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.5, np.nan]), 0.5)

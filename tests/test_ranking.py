"""Ranking across a study's configurations, per-configuration differences and the tuned
comparison, checked against values worked out by hand, statistics tables and autorank."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from actbench.cdplot import caption, cd_figure, critical_difference_figure, groups
from actbench.errors import ActbenchError
from actbench.ranking import (
    DIFFERENCE_COLUMNS,
    TUNED_COLUMNS,
    best_configs,
    nemenyi_q,
    per_config_differences,
    rank_activations,
    tuned_comparison,
)

ACTS = ("relu", "gelu", "tanh", "sigmoid")
# The hand-worked example: the rank (1 = highest accuracy) of relu, gelu, tanh and sigmoid in
# each of six configurations.
RANKS = {
    "depth=1 lr=0.1": (1, 2, 3, 4),
    "depth=1 lr=0.01": (1, 3, 2, 4),
    "depth=2 lr=0.1": (2, 1, 3, 4),
    "depth=2 lr=0.01": (1, 2, 4, 3),
    "depth=3 lr=0.1": (1, 2, 3, 4),
    "depth=3 lr=0.01": (2, 1, 3, 4),
}
# Rank sums: relu 1+1+2+1+1+2 = 8, gelu 2+3+1+2+2+1 = 11, tanh 3+2+3+4+3+3 = 18,
# sigmoid 4+4+4+3+4+4 = 23 (total 60 = N k (k+1) / 2 = 6 * 4 * 5 / 2).
# Mean ranks (N = 6): 8/6 = 1.3333, 11/6 = 1.8333, 18/6 = 3.0, 23/6 = 3.8333.
# Friedman: chi2 = 12 / (N k (k+1)) * sum(R_j^2) - 3 N (k+1)
#               = 12 / 120 * (64 + 121 + 324 + 529) - 90 = 103.8 - 90 = 13.8, df = k - 1 = 3.
# chi-square table, df 3: 12.838 at p = 0.005, 16.266 at p = 0.001, so 0.001 < p < 0.005.
# Nemenyi: q_0.05 = 2.569 for k = 4 (Demšar 2006); CD = 2.569 * sqrt(4 * 5 / (6 * 6)) = 1.9148.
# Mean-rank gaps: relu-sigmoid 2.5 > CD and gelu-sigmoid 2.0 > CD differ; relu-tanh 1.667,
# gelu-tanh 1.167, tanh-sigmoid 0.833 and relu-gelu 0.5 do not.
MEAN_RANKS = {"relu": 8 / 6, "gelu": 11 / 6, "tanh": 3.0, "sigmoid": 23 / 6}
CHI2, CD = 13.8, 2.569 * math.sqrt(20 / 36)


def grid(ranks=RANKS, seeds=(0, 1), spread=(-0.004, 0.004)):
    """A study frame whose per-configuration means over seeds have the given ranks.

    Accuracy 0.98 - 0.01 * rank (minus a little per configuration), the seeds spread around
    it; in the first configuration gelu's seeds straddle relu's, so that only the mean over
    seeds gives the rank the table says.
    """
    rows = []
    for c, (config, order) in enumerate(ranks.items()):
        for activation, rank in zip(ACTS, order, strict=True):
            mean = 0.98 - 0.01 * rank - 0.002 * c
            offsets = spread
            if c == 0 and activation == "gelu":
                offsets = (+0.014, -0.014)  # seed 0 beats relu, seed 1 loses: mean below relu
            for seed, offset in zip(seeds, offsets, strict=True):
                rows.append({"activation": activation, "config": config, "seed": seed,
                             "test_accuracy": mean + offset,
                             "test_loss": 1 - (mean + offset)})  # fmt: skip
    return pd.DataFrame(rows)


def test_ranks_friedman_and_critical_difference_by_hand():
    result = rank_activations(grid())
    assert list(result.mean_ranks.index) == ["relu", "gelu", "tanh", "sigmoid"]  # best first
    for name, rank in MEAN_RANKS.items():
        assert result.mean_ranks[name] == pytest.approx(rank)
    assert result.configs == 6 and result.activations == 4
    assert result.statistic == pytest.approx(CHI2)
    assert 0.001 < result.p < 0.005  # from the chi-square table
    assert result.p == pytest.approx(stats.chi2.sf(CHI2, 3))
    assert result.q_alpha == pytest.approx(2.569, abs=5e-4)  # Demšar's table, k = 4
    assert result.cd == pytest.approx(CD, abs=5e-4)
    assert result.rejected
    assert set(result.differing()) == {("relu", "sigmoid"), ("gelu", "sigmoid")}
    # the Nemenyi p-values (scikit-posthocs) agree with the critical difference
    for row in result.pairs.itertuples():
        assert (row.p_nemenyi < 0.05) == row.differs
    assert result.seeds.tolist() == [2] * 6
    assert "relu and gelu rank above sigmoid" in result.verdict
    assert "averaged over its seeds (2 each)" in result.method


def test_ranking_agrees_with_autorank():
    autorank = pytest.importorskip("autorank.autorank")
    result = rank_activations(grid())
    reference = autorank.autorank(result.means, alpha=0.05, order="descending",
                                  force_mode="nonparametric")  # fmt: skip
    assert reference.omnibus == "friedman"
    assert reference.pvalue == pytest.approx(result.p)
    # autorank's q comes from statsmodels' qsturng, an interpolated table good to about 1e-5
    assert reference.cd == pytest.approx(result.cd, rel=1e-4)
    for name, row in reference.rankdf.iterrows():
        assert row["meanrank"] == pytest.approx(result.mean_ranks[name])


def test_lower_is_better_ranks_the_other_way():
    # test_loss is 1 - accuracy: ranked with lower is better, the same mean ranks
    result = rank_activations(grid(), metric="test_loss", higher_is_better=False)
    for name, rank in MEAN_RANKS.items():
        assert result.mean_ranks[name] == pytest.approx(rank)
    flipped = rank_activations(grid(), metric="test_loss", higher_is_better=True)
    assert flipped.mean_ranks["sigmoid"] == pytest.approx(5 - MEAN_RANKS["sigmoid"])


def test_no_rejection_with_three_configurations():
    # the first three configurations: rank sums relu 4, gelu 6, tanh 8, sigmoid 12;
    # chi2 = 12 / 60 * (16 + 36 + 64 + 144) - 45 = 7.0 < 7.815 (df 3 at 0.05);
    # CD = 2.569 * sqrt(20 / 18) = 2.708
    three = dict(list(RANKS.items())[:3])
    result = rank_activations(grid(three))
    assert result.statistic == pytest.approx(7.0)
    assert result.p > 0.05 and not result.rejected
    assert result.cd == pytest.approx(2.569 * math.sqrt(20 / 18), abs=5e-4)
    assert result.differing() == []
    assert result.verdict.startswith("No difference in rank shown across 3 configurations")
    assert groups(result) == [(0, 3)]  # one bar over all of them


def test_pairs_beyond_the_cd_differ_only_after_a_friedman_rejection():
    # k = 10 activations, N = 3 configurations: a0 is always first, a9 always last, the rest
    # shuffled. Rank sums a0 3, a1..a8 16, 17, 15, 18, 14, 19, 13, 20, a9 30:
    # chi2 = 12 / (3 * 10 * 11) * (9 + 256 + 289 + 225 + 324 + 196 + 361 + 169 + 400 + 900)
    #        - 3 * 3 * 11 = 3129 / 27.5 - 99 = 14.782, df 9: p ~ 0.097 (table: 16.919 at 0.05).
    # a0-a9's gap 9 exceeds CD = 3.164 * sqrt(110 / 18) = 7.82, yet the Friedman test does
    # not reject, so no pair is said to differ (Demšar 2006: the post-hoc test follows a
    # rejection).
    middle = [(2, 3, 4, 5, 6, 7, 8, 9), (9, 8, 7, 6, 5, 4, 3, 2), (5, 6, 4, 7, 3, 8, 2, 9)]
    rows = []
    for c, order in enumerate(middle):
        for a, rank in enumerate((1, *order, 10)):
            rows.append({"activation": f"a{a}", "config": f"c{c}", "seed": 0,
                         "test_accuracy": 1 - rank / 100})  # fmt: skip
    result = rank_activations(pd.DataFrame(rows))
    assert result.statistic == pytest.approx(3129 / 27.5 - 99)
    assert 0.05 < result.p < 0.10  # table, df 9: 14.684 at 0.10
    extremes = result.pairs[(result.pairs["first"] == "a0") & (result.pairs["second"] == "a9")]
    assert extremes["rank_difference"].item() == pytest.approx(9.0)
    assert result.cd == pytest.approx(3.164 * math.sqrt(110 / 18), abs=1e-3)
    assert result.cd < 9.0
    assert extremes["p_nemenyi"].item() < 0.05
    assert not result.pairs["differs"].any() and result.differing() == []
    assert result.verdict.startswith("No difference in rank shown")


def test_ties_share_their_mean_rank_and_correct_the_statistic():
    # config a: relu = gelu > tanh: ranks 1.5, 1.5, 3; config b: relu > gelu > tanh: 1, 2, 3.
    # Rank sums 2.5, 3.5, 6: uncorrected chi2 = 12 / (2 * 3 * 4) * (6.25 + 12.25 + 36) - 24
    # = 3.25; one tie of 2: C = 1 - (2^3 - 2) / (N k (k^2 - 1)) = 1 - 6 / 48 = 0.875;
    # chi2 = 3.25 / 0.875 = 3.7143.
    frame = pd.DataFrame({
        "activation": ["relu", "gelu", "tanh"] * 2,
        "config": ["a"] * 3 + ["b"] * 3,
        "seed": [0] * 6,
        "test_accuracy": [0.9, 0.9, 0.8, 0.95, 0.9, 0.85],
    })  # fmt: skip
    result = rank_activations(frame)
    assert result.mean_ranks.to_dict() == pytest.approx({"relu": 1.25, "gelu": 1.75,
                                                          "tanh": 3.0})  # fmt: skip
    assert result.statistic == pytest.approx(3.25 / 0.875)


def test_every_activation_tied_everywhere_has_no_test():
    frame = grid()
    frame["test_accuracy"] = 0.9
    result = rank_activations(frame)
    assert math.isnan(result.statistic) and math.isnan(result.p) and not result.rejected
    assert result.differing() == []
    assert "ties" in result.verdict


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: f[f["activation"].isin(["relu", "gelu"])], ["at least 3 activations", "relu",
                                                                "gelu"]),
        (lambda f: f[f["config"] == "depth=1 lr=0.1"], ["at least 2 configurations"]),
        (lambda f: f[~((f["activation"] == "tanh") & (f["config"] == "depth=2 lr=0.1"))],
         ["missing", "tanh in 'depth=2 lr=0.1'"]),
        (lambda f: f[~((f["activation"] == "tanh") & (f["seed"] == 1)
                       & (f["config"] == "depth=2 lr=0.1"))],
         ["different seeds", "'depth=2 lr=0.1'", "tanh: 0;"]),
        (lambda f: pd.concat([f, f.iloc[:1]]), ["more than once", "relu in 'depth=1 lr=0.1' seed 0"]),
        (lambda f: f.assign(test_accuracy=f["test_accuracy"].where(f.index != 5)),
         ["test_accuracy has no value", "1 model", "tanh in 'depth=1 lr=0.1' seed 1"]),
        (lambda f: f.drop(columns="config"), ["no config column"]),
        (lambda f: f.iloc[:0], ["no rows"]),
    ],
)  # fmt: skip
def test_ranking_refuses_an_incomplete_study_naming_the_hole(change, words):
    with pytest.raises(ValueError) as caught:
        rank_activations(change(grid()))
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_alpha_must_be_a_probability():
    with pytest.raises(ValueError, match="alpha"):
        rank_activations(grid(), alpha=1.5)
    with pytest.raises(ValueError):
        nemenyi_q(0.05, 1)


@pytest.mark.parametrize(("k", "q"), [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728),
                                      (6, 2.850), (10, 3.164)])  # fmt: skip
def test_nemenyi_q_matches_demsar_table(k, q):
    # the table's last digit is cut rather than rounded in places (2.343 for 2.3437)
    assert nemenyi_q(0.05, k) == pytest.approx(q, abs=1e-3)


# Two-sided critical values of Student's t with 2 degrees of freedom (any t table): a paired t
# statistic equal to one of them has exactly that p-value.
T2 = {0.10: 2.920, 0.05: 4.303, 0.01: 9.925, 0.001: 31.599}


def paired_frame(t_values):
    """3 seeds; relu is the baseline; each other (activation, config) differs from it by
    (m - 1, m, m + 1) thousandths with m = t / sqrt(3): sd 1, so the paired t is t."""
    base = [0.90, 0.91, 0.92]
    rows = []
    for config in dict.fromkeys(c for c, _ in t_values):
        for seed in range(3):
            rows.append({"activation": "relu", "config": config, "seed": seed,
                         "test_accuracy": base[seed]})  # fmt: skip
    for (config, activation), t in t_values.items():
        m = t / math.sqrt(3)
        for seed, d in enumerate((m - 1, m, m + 1)):
            rows.append({"activation": activation, "config": config, "seed": seed,
                         "test_accuracy": base[seed] + d / 1000})  # fmt: skip
    return pd.DataFrame(rows)


def test_per_config_differences_holm_over_the_whole_study_by_hand():
    frame = paired_frame({("lr=0.1", "gelu"): T2[0.001], ("lr=0.1", "tanh"): T2[0.05],
                          ("lr=0.01", "gelu"): T2[0.01], ("lr=0.01", "tanh"): T2[0.10]})  # fmt: skip
    table = per_config_differences(frame, "relu")
    assert list(table.columns) == DIFFERENCE_COLUMNS
    assert list(zip(table["config"], table["activation"], strict=True)) == [
        ("lr=0.1", "gelu"),
        ("lr=0.1", "tanh"),
        ("lr=0.01", "gelu"),
        ("lr=0.01", "tanh"),
    ]
    assert table["p"].tolist() == pytest.approx([0.001, 0.05, 0.01, 0.10], rel=2e-3)
    # Holm over all 4: sorted p 0.001, 0.01, 0.05, 0.10 times 4, 3, 2, 1 = 0.004, 0.03, 0.10,
    # 0.10, each at least the one before: 0.004, 0.03, 0.10, 0.10.
    assert table["p_holm"].tolist() == pytest.approx([0.004, 0.10, 0.03, 0.10], rel=2e-3)
    assert table["significant"].tolist() == [True, False, True, False]
    first = table.iloc[0]
    assert first["seeds"] == 3 and first["baseline"] == "relu"
    assert first["difference"] == pytest.approx(T2[0.001] / math.sqrt(3) / 1000)
    assert first["d_z"] == pytest.approx(T2[0.001] / math.sqrt(3))  # mean / sd, sd 1
    # 95% interval: mean ± t(2) 4.303 * sd / sqrt(3), in thousandths
    assert first["high"] - first["difference"] == pytest.approx(4.303 / math.sqrt(3) / 1000,
                                                                rel=1e-3)  # fmt: skip


def test_per_config_differences_refuses_an_unknown_baseline():
    frame = paired_frame({("a", "gelu"): 3.0, ("b", "gelu"): 3.0})
    with pytest.raises(ValueError, match="baseline 'swish' is not among"):
        per_config_differences(frame, "swish")


def tuning_frame():
    """relu (baseline), gelu and tanh in three configurations with 3 seeds each.

    Mean validation accuracy over seeds:
               lr=0.1  lr=0.01  lr=0.001
      relu     0.95    0.97     0.96      -> lr=0.01
      gelu     0.98    0.96     0.94      -> lr=0.1 (by test accuracy it would be lr=0.001)
      tanh     0.92    0.94     0.94      -> a tie: lr=0.01, the first in order
    """
    val = {
        ("relu", "lr=0.1"): (0.94, 0.95, 0.96), ("relu", "lr=0.01"): (0.96, 0.97, 0.98),
        ("relu", "lr=0.001"): (0.95, 0.96, 0.97),
        ("gelu", "lr=0.1"): (0.97, 0.98, 0.99), ("gelu", "lr=0.01"): (0.95, 0.96, 0.97),
        ("gelu", "lr=0.001"): (0.93, 0.94, 0.95),
        ("tanh", "lr=0.1"): (0.91, 0.92, 0.93), ("tanh", "lr=0.01"): (0.93, 0.94, 0.95),
        ("tanh", "lr=0.001"): (0.95, 0.94, 0.93),
    }  # fmt: skip
    test = {
        ("relu", "lr=0.01"): (0.960, 0.970, 0.980),
        ("gelu", "lr=0.1"): (0.970, 0.975, 0.995),  # relu + (0.010, 0.005, 0.015)
        ("gelu", "lr=0.01"): (0.955, 0.972, 0.979),  # relu + (-0.005, 0.002, -0.001)
        ("gelu", "lr=0.001"): (0.999, 0.999, 0.999),
        ("tanh", "lr=0.01"): (0.950, 0.952, 0.968),  # relu + (-0.010, -0.018, -0.012)
    }  # fmt: skip
    rows = []
    for (activation, config), values in val.items():
        for seed, v in enumerate(values):
            t = test.get((activation, config), (0.9, 0.9, 0.9))[seed]
            rows.append({"activation": activation, "config": config, "seed": seed,
                         "val_accuracy": v, "test_accuracy": t})  # fmt: skip
    return pd.DataFrame(rows)


def test_best_configs_choose_on_validation_and_break_ties_by_order():
    best = best_configs(tuning_frame()).set_index("activation")
    assert best["config"].to_dict() == {"relu": "lr=0.01", "gelu": "lr=0.1", "tanh": "lr=0.01"}
    assert best["select_mean"].to_dict() == pytest.approx({"relu": 0.97, "gelu": 0.98,
                                                           "tanh": 0.94})  # fmt: skip
    assert best["tied_with"].to_dict() == {"relu": "", "gelu": "", "tanh": "lr=0.001"}


def test_tuned_comparison_by_hand():
    table = tuned_comparison(tuning_frame(), baseline="relu")
    assert list(table.columns) == TUNED_COLUMNS
    tuned = table[table["comparison"] == "tuned"].set_index("activation")
    shared = table[table["comparison"] == "shared"].set_index("activation")
    assert tuned["config"].to_dict() == {"gelu": "lr=0.1", "tanh": "lr=0.01"}
    assert set(table["baseline_config"]) == {"lr=0.01"}
    assert tuned.loc["tanh", "tied_with"] == "lr=0.001"
    assert shared["config"].to_dict() == {"gelu": "lr=0.01", "tanh": "lr=0.01"}
    assert shared.loc["gelu", "select_mean"] == pytest.approx(0.96)
    # tuned gelu - relu: (0.010, 0.005, 0.015), mean 0.010, sd 0.005, t = 0.01 / (0.005 / √3)
    assert tuned.loc["gelu", "difference"] == pytest.approx(0.010)
    assert tuned.loc["gelu", "t"] == pytest.approx(2 * math.sqrt(3))
    assert tuned.loc["tanh", "difference"] == pytest.approx(-0.040 / 3)
    assert shared.loc["gelu", "difference"] == pytest.approx(-0.004 / 3)
    # Holm within each family of 2: the smaller p doubled, the larger at least that
    for family in (tuned, shared):
        small, large = sorted(family["p"])
        expected = {small: min(1, 2 * small), large: max(min(1, 2 * small), large)}
        for row in family.itertuples():
            assert row.p_holm == pytest.approx(expected[row.p])
    reference = stats.ttest_rel([0.970, 0.975, 0.995], [0.960, 0.970, 0.980])
    assert tuned.loc["gelu", "p"] == pytest.approx(reference.pvalue)


@pytest.mark.parametrize(
    ("change", "kwargs", "words"),
    [
        (lambda f: f.drop(columns="val_accuracy"), {}, ["no validation metric", "--val"]),
        (lambda f: f.assign(val_accuracy=math.nan), {}, ["no validation metric"]),
        (lambda f: f.assign(val_accuracy=f["val_accuracy"].where(f.index != 0)), {},
         ["val_accuracy has no value", "relu in 'lr=0.1' seed 0"]),
        (lambda f: f, {"select_metric": "test_accuracy"}, ["overstate"]),
        (lambda f: f, {"baseline": "swish"}, ["baseline 'swish'"]),
        (lambda f: f[f["activation"] == "relu"], {}, ["only one activation"]),
    ],
)  # fmt: skip
def test_tuned_comparison_refuses(change, kwargs, words):
    with pytest.raises(ValueError) as caught:
        tuned_comparison(change(tuning_frame()), **{"baseline": "relu", **kwargs})
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_critical_difference_figure(tmp_path):
    result = rank_activations(grid())
    # relu..tanh within CD (gap 1.667), relu..sigmoid not; gelu..tanh lies inside the first
    # run; tanh..sigmoid (0.833) is the second
    assert groups(result) == [(0, 2), (2, 3)]
    path = critical_difference_figure(result, tmp_path / "ranks.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    texts = [
        t.get_text() for t in cd_figure(result).findobj(match=lambda a: hasattr(a, "get_text"))
    ]
    assert {"relu (1.33)", "gelu (1.83)", "tanh (3.00)", "sigmoid (3.83)", "CD = 1.91"} <= set(
        texts)  # fmt: skip
    words = caption(result)
    for part in ("Friedman test with the Nemenyi post-hoc test", "α = 0.05", "6 configurations",
                 "4 activations", "CD = 1.91", "χ² = 13.80", "p = 0.003"):  # fmt: skip
        assert part in words


def test_critical_difference_figure_on_a_bad_path_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ActbenchError, match="cannot write"):
        critical_difference_figure(rank_activations(grid()), tmp_path / "file" / "ranks.png")

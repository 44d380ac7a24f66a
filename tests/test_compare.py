"""The comparison library (issue 19) on synthetic runs: interpolation onto a KL grid, IQM and
probability of improvement against hand numbers, bootstrap coverage, the fits of Gao et al.,
the tidy table and the written report. No training: the integration test on a real smoke
sweep's W&B files belongs to the issue's next step."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, trim_mean

from inform.report.compare import (
    Curve, compare, csv_run, curves, default_label, fit_gao, fits, gao_curve, gao_peak, iqm, on_kl_grid, paired_difference,
    probability_of_improvement, read_tidy, summarize, tidy, unpaired_difference, write_csv, write_report,
)
from inform.report.compare.stats import tail

BT = "bt, kl_coef 0.05"


@dataclass
class FakeRun:
    """What `tidy` reads of an `OfflineRun`."""
    name: str
    config: dict
    history: list = field(default_factory=list)
    job_type: str = "ppo"
    group: str = "test"
    run_id: str = ""


def run_of(name: str, objective: str, seed: int, kl, gold, **config) -> FakeRun:
    """W&B-style history: a training row and an eval row per eval step."""
    history = []
    for t, (k, g) in enumerate(zip(kl, gold)):
        history.append({"trainer/global_step": 4 * t, "train/loss": 1.0})
        history.append({"trainer/global_step": 4 * t, "eval/kl": k, "reward/gold": g, "reward/proxy_eval": g + k,
                        "reward/true": g / 2})
    return FakeRun(name, {"objective": {"name": objective}, "kl_coef": 0.05, "seed": seed, **config}, history)


# ---------------------------------------------------------------------------- the KL grid
def test_on_kl_grid_against_hand_numbers():
    """First crossing of the running max of KL, linear between eval points, NaN outside
    [KL at step 0, max KL]. kl = 0, 1, 3, 2, 4 (the dip to 2 is not a second crossing)."""
    kl, gold = [0.0, 1.0, 3.0, 2.0, 4.0], [0.0, 1.0, 2.0, 5.0, 3.0]
    grid = [-0.1, 0.0, 0.5, 2.0, 2.5, 3.5, 4.0, 5.0]
    # k=0.5: (0,1)->(1,1): 0.5; k=2: first crossing on (1,1)->(3,2): 1.5, not the 5 at the later KL 2;
    # k=2.5: 1.75; k=3.5: running max reaches 3.5 on (2,5)->(4,3): 5 - 0.75 * 2 = 3.5; k=4: 3.
    want = [math.nan, 0.0, 0.5, 1.5, 1.75, 3.5, 3.0, math.nan]
    np.testing.assert_allclose(on_kl_grid(kl, gold, grid), want, equal_nan=True)
    # a run that stops at KL 1.5 has no value at 2: 0.4 + (1 - 0.8) / 0.7 * 0.2 at KL 1
    np.testing.assert_allclose(on_kl_grid([0, 0.8, 1.5], [0, 0.4, 0.6], [1.0, 2.0]), [0.4 + 0.2 / 0.7 * 0.2, math.nan])
    # a monotone run: plain linear interpolation, 0.8 + (2.5 - 1.9) / 1.3 * (0.6 - 0.8)
    assert on_kl_grid([0, 0.7, 1.9, 3.2], [0, 0.5, 0.8, 0.6], [2.5])[0] == pytest.approx(0.8 - 0.6 / 1.3 * 0.2)


def test_a_run_that_stops_early_counts_as_not_reached():
    """n reached / n per cell: the second run stops at KL 1.5, before the budget 2."""
    runs = [run_of("a", "bt", 0, [0, 1, 2.5], [0, 1, 2]), run_of("b", "bt", 1, [0, 0.8, 1.5], [0, 0.4, 0.6])]
    row = {r["kl"]: r for r in compare(tidy(runs), BT, grid=[1, 2], budgets=(2,), n_boot=200)["budgets"]}[2.0]
    assert (row["n_reached"], row["n_runs"]) == (1, 2)
    assert row["mean"] == pytest.approx(1.0 + 1.0 / 1.5) and math.isnan(row["mean_lo"])  # one run: no interval


# ---------------------------------------------------------------------------- statistics
def test_iqm_against_hand_numbers_and_rliable():
    """rliable's aggregate_iqm is scipy.stats.trim_mean(x, 0.25): floor(n/4) values cut at each end."""
    assert iqm(np.array([1, 2, 3, 4, 5, 6, 7, 100.0])) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    x = np.array([10, 1, 2, 3, 4, 5, 6, 7, 8, 1000.0])  # n = 10: 2 cut at each end, mean of 3..8
    assert iqm(x) == pytest.approx(5.5) == trim_mean(x, 0.25)
    assert iqm(np.array([1, 2, 9.0])) == pytest.approx(4.0)  # n = 3: nothing cut
    m = np.random.default_rng(0).normal(size=(7, 11))
    np.testing.assert_allclose(iqm(m, axis=1), trim_mean(m, 0.25, axis=1))


def test_probability_of_improvement_against_hand_numbers():
    """rliable: P(X > Y) over all pairs = Mann-Whitney U / (n_x n_y), ties 1/2; paired: over
    the seed pairs."""
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.5])
    # pairs: (1,2) 0, (1,2.5) 0, (2,2) 1/2, (2,2.5) 0, (3,2) 1, (3,2.5) 1 -> 2.5 / 6
    assert probability_of_improvement(x, y) == pytest.approx(2.5 / 6)
    assert probability_of_improvement(x, y) == pytest.approx(mannwhitneyu(x, y, alternative="greater").statistic / 6)
    res = paired_difference([1.0, 2.0, 3.0, 4.0, math.nan], [0.0, 2.0, 5.0, 3.0, 1.0], n_boot=500)
    # d = 1, 0, -2, 1 (the NaN pair dropped): mean 0; (1 + 1/2 + 0 + 1) / 4 = 0.625
    assert (res["n_pairs"], res["diff"], res["poi"]) == (4, pytest.approx(0.0), pytest.approx(0.625))
    assert res["diff_lo"] < 0 < res["diff_hi"] and res["poi_lo"] <= 0.625 <= res["poi_hi"]


def test_expanded_percentile_tail():
    """Hesterberg's expanded percentile interval: a' = Phi(sqrt(n/(n-1)) t_{0.025, n-1});
    n = 10: Phi(1.05409 * -2.26216) = Phi(-2.38453) = 0.008551."""
    assert tail(10) == pytest.approx(0.0085506, abs=1e-6)
    assert tail(10, method="percentile") == pytest.approx(0.025)
    s = summarize([1.0, 2.0, 3.0], n_boot=2000)
    assert s["mean"] == 2.0 and s["mean_lo"] >= 1.0 and s["mean_hi"] <= 3.0
    assert summarize([1.0, 2.0, 3.0], n_boot=2000) == s  # fixed seed: the same interval


def test_paired_interval_covers_the_true_difference_and_is_narrower():
    """rliable's protocol on synthetic curves: 10 seeds, each seed's noise (its SFT policy, gold
    RM, labels) shared by both methods, X's gold = baseline's + 0.3 at every KL; the difference
    at KL 2 after interpolation. The 95% interval covers 0.3 in 90-99% of 200 replications, and
    the paired interval is much narrower than the unpaired one."""
    rng = np.random.default_rng(2024)
    hits, paired_w, unpaired_w = 0, [], []
    for _ in range(200):
        shared = rng.normal(0.0, 1.0, 10)

        def gold_at_2(shift: float, shared: np.ndarray = shared) -> np.ndarray:
            out = []
            for s in range(10):
                kl = np.concatenate([[0.0], np.cumsum(rng.uniform(0.2, 0.6, 12))])
                gold = shared[s] + shift + np.sqrt(kl) + rng.normal(0.0, 0.2, kl.size)
                out.append(on_kl_grid(kl, gold, [2.0])[0])
            return np.array(out)

        x, b = gold_at_2(0.3), gold_at_2(0.0)
        p, u = paired_difference(x, b), unpaired_difference(x, b)
        hits += p["diff_lo"] <= 0.3 <= p["diff_hi"]
        paired_w.append(p["diff_hi"] - p["diff_lo"])
        unpaired_w.append(u["diff_hi"] - u["diff_lo"])
    assert 0.90 <= hits / 200 <= 0.99
    assert np.mean(paired_w) < 0.5 * np.mean(unpaired_w)


# ---------------------------------------------------------------------------- Gao et al.
@pytest.mark.parametrize("form, alpha, beta", [("rl", 0.8, 0.3), ("bon", 1.2, 0.15)])
def test_gao_fits_recover_exact_curves_and_their_peak(form, alpha, beta):
    """Gao et al. 2022 (arXiv 2210.10760) sec. 3: RL R(d) = d (alpha - beta log d), BoN
    R(d) = d (alpha - beta d), d = sqrt(KL). The peak: RL d* = exp(alpha/beta - 1), BoN
    d* = alpha / (2 beta), KL* = d*^2; checked against a dense numerical argmax."""
    kl = np.linspace(0.0, 30.0, 26)
    a, b = fit_gao(kl, gao_curve(kl, alpha, beta, form), form)
    assert (a, b) == (pytest.approx(alpha, abs=1e-3), pytest.approx(beta, abs=1e-3))
    kl_star, r_star = gao_peak(alpha, beta, form)
    dense = np.linspace(0.0, 4 * kl_star, 400_001)
    r = gao_curve(dense, alpha, beta, form)
    assert kl_star == pytest.approx(dense[r.argmax()], rel=1e-3) and r_star == pytest.approx(r.max(), rel=1e-6)
    assert gao_peak(alpha, -beta, form)[0] == math.inf  # beta <= 0: no peak


def test_gao_fits_on_noisy_runs_cover_the_truth():
    """40 replications of 10 seeds of the RL form, each seed with its own KL path, SFT offset
    and eval noise: the 95% intervals over seeds for alpha, beta and KL* (= e^{2 (alpha/beta - 1)})
    contain the true values in at least 36 of 40 (about 96% measured over 300), and the
    estimates are unbiased."""
    rng = np.random.default_rng(7)
    alpha, beta = 1.0, 0.4
    truth = {"alpha": alpha, "beta": beta, "kl_star": math.exp(2 * (alpha / beta - 1))}
    hits, est = dict.fromkeys(truth, 0), []
    for _ in range(40):
        runs = {}
        for s in range(10):
            kl = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 1.5, 25))])
            gold = 0.2 * rng.normal() + gao_curve(kl, alpha, beta) + rng.normal(0.0, 0.05, kl.size)
            runs[s] = Curve(f"r{s}", BT, s, np.arange(kl.size), kl, {"reward/gold": gold})
        (fit,) = fits({BT: runs}, "rl", n_boot=2000)
        assert fit["n_fitted"] == 10
        hits = {k: hits[k] + (fit[f"{k}_lo"] <= v <= fit[f"{k}_hi"]) for k, v in truth.items()}
        est.append([fit["alpha"], fit["beta"]])
    assert min(hits.values()) >= 36, hits
    np.testing.assert_allclose(np.mean(est, axis=0), [alpha, beta], atol=0.01)


# ---------------------------------------------------------------------------- tidy and report
def test_default_label():
    assert default_label({"objective": {"name": "ib"}, "beta": 0.1, "kl_coef": 0.05, "ensemble": {"members": 1}}) \
        == "ib beta=0.1, kl_coef 0.05"
    assert default_label({"objective": {"name": "bt"}, "ensemble": {"members": 4, "combine": "uwo"}, "kl_coef": 0.2}) \
        == "bt ensemble-uwo x4, kl_coef 0.2"


def test_tidy_from_wandb_style_and_csv_rows(tmp_path):
    """One row per eval step: rows of one step merged (CSI logged apart), training rows and
    non-RL runs left out, detector metrics as columns (NaN where a run did not log them)."""
    a = run_of("a", "ib", 3, [0.0, 1.0], [0.1, 0.6], beta=0.1)
    a.history.append({"trainer/global_step": 4, "csi/value": 2.5, "detect/mop": 0.1})
    rm = FakeRun("rm", {"objective": {"name": "bt"}, "seed": 3}, [{"trainer/global_step": 0, "eval/kl": 0.0}], job_type="rm")
    empty = FakeRun("e", {"objective": {"name": "bt"}, "seed": 4}, [{"trainer/global_step": 0, "train/loss": 1.0}])
    (tmp_path / "csv" / "part0").mkdir(parents=True)
    with open(tmp_path / "csv" / "part0" / "metrics.csv", "w") as f:
        f.write("step,train/loss,eval/kl,reward/gold\n0,1.0,,\n0,,0.0,0.2\n4,0.5,,\n4,,1.5,0.9\n")
    b = csv_run(tmp_path / "csv", {"objective": {"name": "bt"}, "kl_coef": 0.05, "seed": 3}, name="b")
    table = tidy([a, rm, empty, b])
    assert [(r["run"], r["method"], r["seed"], r["step"]) for r in table] == [
        ("a", "ib beta=0.1, kl_coef 0.05", 3, 0), ("a", "ib beta=0.1, kl_coef 0.05", 3, 4), ("b", BT, 3, 0), ("b", BT, 3, 4)]
    assert list(table[0]) == ["run", "group", "job_type", "method", "seed", "step", "eval/kl", "reward/proxy_eval",
                              "reward/gold", "reward/true", "csi/value", "detect/mop"]
    assert (table[1]["eval/kl"], table[1]["reward/gold"], table[1]["csi/value"], table[1]["detect/mop"]) == (1.0, 0.6, 2.5, 0.1)
    assert math.isnan(table[0]["csi/value"]) and math.isnan(table[3]["reward/true"])
    assert (table[3]["eval/kl"], table[3]["reward/gold"]) == (1.5, 0.9)
    with pytest.raises(ValueError, match="two runs"):
        curves(tidy([b, csv_run(tmp_path / "csv", b.config, name="c")]))


def test_tidy_chunks_written_and_read_back_merge_into_the_whole_table(tmp_path):
    """A sweep analysed a chunk of seeds at a time: each chunk's tidy CSV read back equals its
    rows (NaN cells included), the chunks concatenate, and a file that is not a tidy table is
    refused, naming it."""
    runs = [run_of(f"r{s}", "bt", s, [0.0, 1.0, 2.0], [0.1, 0.5 + s, 0.2]) for s in range(4)]
    runs[3].history.append({"trainer/global_step": 4, "csi/value": 7.0})  # a column only the second chunk has
    first, second = tidy(runs[:2]), tidy(runs[2:])
    write_csv(first, tmp_path / "seeds_0-1.csv")
    write_csv(second, tmp_path / "seeds_2-3.csv")
    back = read_tidy(tmp_path / "seeds_0-1.csv", tmp_path / "seeds_2-3.csv")
    assert len(back) == 12 and [r["seed"] for r in back] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    want = first + second
    for got, row in zip(back, want):
        for k in ("run", "method", "seed", "step", "eval/kl", "reward/gold", "reward/true"):
            assert got[k] == row[k], k
        assert math.isnan(got["csi/value"]) == math.isnan(row.get("csi/value", math.nan))
    assert back[10]["csi/value"] == 7.0 and not (tmp_path / "seeds_0-1.csv.tmp").exists()
    (tmp_path / "other.csv").write_text("step,loss\n0,1.0\n")
    with pytest.raises(ValueError, match=r"other\.csv: not a tidy table \(no column run, method, seed, eval/kl\)"):
        read_tidy(tmp_path / "other.csv")
    # a partial sweep: the seeds and methods the grid expects but did not get
    res = compare(back, BT, expected_seeds=range(5), expected_methods=[BT, "bsr, kl_coef 0.05"], n_boot=200)
    assert res["coverage"] == [{"method": BT, "runs": 4, "seeds": [0, 1, 2, 3], "missing_seeds": [4]},
                               {"method": "bsr, kl_coef 0.05", "runs": 0, "seeds": [], "missing_seeds": [0, 1, 2, 3, 4]}]


def test_write_report_numbers_equal_a_direct_computation(tmp_path):
    """results.md, the CSVs and the figure from 2 methods x 3 seeds (one IB run stops early);
    the budget table's cells equal the mean of on_kl_grid over the runs, the paired
    difference the mean of the per-seed differences."""
    rng = np.random.default_rng(3)
    runs, at2 = [], {"bt": [], "ib": []}
    for s in range(3):
        for name, top in (("bt", 6.0), ("ib", 1.5 if s == 2 else 6.0)):
            kl = np.linspace(0.0, top, 9)
            gold = s + np.sqrt(kl) * (1.3 if name == "ib" else 1.0) + rng.normal(0, 0.05, 9)
            runs.append(run_of(f"{name}{s}", name, s, kl, gold, beta=0.1))
            at2[name].append(on_kl_grid(kl, gold, [2.0])[0])
    out = write_report(tidy(runs), tmp_path, baseline=BT, budgets=(2.0,), n_boot=1000)
    md = out["results_md"].read_text()
    ib = "ib beta=0.1, kl_coef 0.05"
    assert f"| {BT} | 2 | 3/3 | {np.mean(at2['bt']):.2f} [" in md
    assert f"| {ib} | 2 | 2/3 | {np.nanmean(at2['ib']):.2f} [" in md
    diff = np.nanmean(np.array(at2["ib"]) - np.array(at2["bt"]))
    assert f"| {ib} | 2 | 2 | {diff:.2f} [" in md and "| 0, 1, 2 | none |" in md
    with open(out["tidy_csv"]) as f:
        assert len(list(csv.DictReader(f))) == 6 * 9
    assert out["curves_csv"].is_file() and out["differences_csv"].is_file()
    assert out["figure"].stat().st_size > 10_000


def test_a_verdict_needs_five_seed_pairs():
    """With 2 pairs the paired interval is the range of the two differences (a bootstrap never
    leaves the data's range), so two positive differences would read as a win: no verdict
    below report.MIN_PAIRS = 5; from 5 on, the interval decides, and one holding 0 is
    'no difference detected'."""
    from inform.report.compare.report import reading

    two = paired_difference(np.array([1.1, 1.3]), np.array([1.0, 1.0]), n_boot=2000)
    assert (two["diff_lo"], two["diff_hi"]) == pytest.approx((0.1, 0.3))  # [min, max]
    assert reading(two) == "no verdict: 2 seed pairs (a verdict needs 5)"
    up = paired_difference(np.array([1.1, 1.3, 1.2, 1.25, 1.15]), np.ones(5), n_boot=2000)
    assert up["diff_lo"] > 0 and reading(up) == "above baseline"
    down = paired_difference(np.ones(5), np.array([1.1, 1.3, 1.2, 1.25, 1.15]), n_boot=2000)
    assert reading(down) == "below baseline"
    mixed = paired_difference(np.array([1.1, 0.8, 1.2, 0.9, 1.05]), np.ones(5), n_boot=2000)
    assert mixed["diff_lo"] < 0 < mixed["diff_hi"] and reading(mixed) == "no difference detected with 5 seeds"

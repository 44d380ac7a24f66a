"""Comparisons a reviewer accepts (issue 19): a sweep's RL runs as one tidy table, each run's
curve on a common KL grid, per method the mean and interquartile mean with bootstrap intervals
over seeds, the paired difference to a baseline with the probability of improvement, the peak,
gold at fixed KL budgets, and the fits of Gao et al. 2022; written as results.md, CSV and a
figure.

    from inform.report.compare import tidy, write_report
    from inform.tracking.wandb_offline import find_runs
    table = tidy(find_runs("multirun/", merge_resumed=True))
    write_report(table, "analysis/", baseline="bt, kl_coef 0.05")

table.py: runs -> tidy rows -> curves; kl.py: a curve at given KL values; stats.py: IQM,
bootstrap intervals, paired differences; gao.py: the functional fits; analysis.py: the tables;
report.py: the files.
"""
from inform.report.compare.analysis import compare, coverage, differences, fits, levels, peaks
from inform.report.compare.gao import fit_gao, fit_run, gao_curve, gao_peak
from inform.report.compare.kl import BUDGETS, kl_grid, on_kl_grid, peak
from inform.report.compare.report import markdown, plot, write_report
from inform.report.compare.stats import (
    bootstrap, iqm, paired_difference, probability_of_improvement, summarize, unpaired_difference,
)
from inform.report.compare.table import CsvRun, Curve, csv_run, curves, default_label, default_seed, read_tidy, tidy, write_csv

__all__ = [
    "BUDGETS", "CsvRun", "Curve", "bootstrap", "compare", "coverage", "csv_run", "curves", "default_label", "default_seed",
    "differences", "fit_gao", "fit_run", "fits", "gao_curve", "gao_peak", "iqm", "kl_grid", "levels", "markdown",
    "on_kl_grid", "paired_difference", "peak", "peaks", "plot", "probability_of_improvement", "read_tidy", "summarize", "tidy",
    "unpaired_difference", "write_csv", "write_report",
]

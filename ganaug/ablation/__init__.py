"""Ablation grids: training-speaker fraction x augmentation x generator option x seed, plus TSTR.

``ganaug ablate HPARAMS.yaml`` calls :func:`main`; see :mod:`ganaug.ablation.grid` for the grid
and :mod:`ganaug.ablation.stats` for the summaries (per-seed Wilson intervals, t intervals over seeds,
paired differences between arms), CSV, markdown/HTML tables and plot; the intervals themselves are in
:mod:`ganaug.ablation.intervals` (scipy).
"""

from ganaug.ablation.grid import ARMS, main, plan_cells, run_ablation
from ganaug.ablation.intervals import mean_std_ci, paired_bootstrap, paired_t, wilson_interval
from ganaug.ablation.stats import html_table, markdown_table, seed_table, summarize

__all__ = ["main", "run_ablation", "plan_cells", "ARMS", "mean_std_ci", "wilson_interval", "paired_t",
           "paired_bootstrap", "summarize", "markdown_table", "seed_table", "html_table"]

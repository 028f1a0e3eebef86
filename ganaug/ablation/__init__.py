"""Ablation grids: training-speaker fraction x augmentation x generator option x seed, plus TSTR.

``ganaug ablate HPARAMS.yaml`` calls :func:`main`; see :mod:`ganaug.ablation.grid` for the grid
and :mod:`ganaug.ablation.stats` for the summaries (mean, std, t and Wilson intervals), CSV,
markdown/HTML tables and plot.
"""

from ganaug.ablation.grid import ARMS, main, plan_cells, run_ablation
from ganaug.ablation.stats import html_table, markdown_table, mean_std_ci, summarize, t_critical, wilson_interval

__all__ = ["main", "run_ablation", "plan_cells", "ARMS", "mean_std_ci", "t_critical", "wilson_interval",
           "summarize", "markdown_table", "html_table"]

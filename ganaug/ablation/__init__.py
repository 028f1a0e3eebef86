"""Ablation grids: training-speaker fraction x augmentation x seed, plus TSTR.

``ganaug ablate HPARAMS.yaml`` calls :func:`main`; see :mod:`ganaug.ablation.grid` for the grid
and :mod:`ganaug.ablation.stats` for the mean / std / 95% CI summaries, CSV, markdown and plot.
"""

from ganaug.ablation.grid import AUGMENTATIONS, load_ablation_hparams, main, plan_cells, run_ablation
from ganaug.ablation.stats import markdown_table, mean_std_ci, summarize, t_critical

__all__ = ["main", "run_ablation", "plan_cells", "load_ablation_hparams", "AUGMENTATIONS",
           "mean_std_ci", "t_critical", "summarize", "markdown_table"]

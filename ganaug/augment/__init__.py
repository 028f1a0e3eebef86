"""Synthetic keyword clips as data augmentation: GanAugment, GanMixDataset, SyntheticBank, and
the one generator source they share (load, sample, resample, fit length, label filter)."""

from ganaug.augment.bank import SyntheticBank, generate_bank, make_source
from ganaug.augment.filter import LabelFilter, default_filter_dir
from ganaug.augment.mix import GanMixDataset
from ganaug.augment.source import ClipSource, FilteredSource, GeneratorSource, fit_clips, synthesize, with_filter
from ganaug.augment.rows import InjectionPolicy, draw_params
from ganaug.augment.transform import GanAugment, gan_augment

__all__ = ["GanAugment", "GanMixDataset", "SyntheticBank", "ClipSource", "GeneratorSource", "FilteredSource", "LabelFilter",
           "make_source", "with_filter", "synthesize", "fit_clips", "default_filter_dir", "generate_bank",
           "draw_params", "gan_augment", "InjectionPolicy"]

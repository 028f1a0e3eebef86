"""Synthetic keyword clips as data augmentation: GanAugment, GanMixDataset, SyntheticBank."""

from ganaug.augment.bank import SyntheticBank, generate_bank, generate_main
from ganaug.augment.mix import GanMixDataset
from ganaug.augment.source import GeneratorSource, make_source
from ganaug.augment.transform import GanAugment, draw_params, gan_augment

__all__ = ["GanAugment", "GanMixDataset", "SyntheticBank", "GeneratorSource", "make_source",
           "generate_bank", "generate_main", "draw_params", "gan_augment"]

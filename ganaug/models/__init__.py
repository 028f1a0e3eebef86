"""Generator families behind one interface: ``.sample(n, labels=None, generator=None)``.

``GENERATORS`` maps the family name stored in a checkpoint's config.json to its class; a new
family registers here and every loader, augmenter and recipe takes it unchanged.
"""

from ganaug.models.wavegan import PRESETS, PhaseShuffle, WaveGANDiscriminator, WaveGANGenerator

GENERATORS = {"wavegan": WaveGANGenerator}

__all__ = ["WaveGANGenerator", "WaveGANDiscriminator", "PhaseShuffle", "PRESETS", "GENERATORS"]

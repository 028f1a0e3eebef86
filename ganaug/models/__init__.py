"""Generator families behind one interface: ``.sample(n, labels=None, generator=None)``.

``GENERATORS`` maps the family name stored in a checkpoint's config.json to its class; a new
family registers here and every loader, augmenter and recipe takes it unchanged.
``DISCRIMINATORS`` maps the same name to the critic that ``ganaug.train`` pairs with it.

A generator has ``family``, ``config()``, ``label_names``, ``sample_rate``, ``num_samples``,
``latent_dim``, ``forward(z, labels)`` -> what the critic sees, ``encode(wavs)`` -> real clips in
that space, ``fit_data(wavs)`` (data statistics, set once before training, from an
``(N, num_samples)`` tensor or an iterable of batches) and
``sample(n, labels, generator)`` -> waveforms (every family inherits ``sample`` and ``synthesize`` from
:class:`ganaug.models.sampling.Sampling`, the one inference path, and supplies ``decode``). A critic has ``config()`` and
``forward(x, labels=None)`` -> ``(batch,)``. The training loop calls nothing else.

The keyword classifier (``KWSClassifier``, a log-mel DS-CNN) lives here too: the KWS recipe
trains it, and metrics and the label-consistency filter load it.
"""

from ganaug.models.classifier import KWSClassifier, is_classifier, load_classifier, save_classifier
from ganaug.models.specgan import SpecGANDiscriminator, SpecGANGenerator
from ganaug.models.tifgan import TiFGANDiscriminator, TiFGANGenerator
from ganaug.models.wavegan import PhaseShuffle, WaveGANDiscriminator, WaveGANGenerator

GENERATORS = {"wavegan": WaveGANGenerator, "specgan": SpecGANGenerator, "tifgan": TiFGANGenerator}
DISCRIMINATORS = {"wavegan": WaveGANDiscriminator, "specgan": SpecGANDiscriminator, "tifgan": TiFGANDiscriminator}

__all__ = ["WaveGANGenerator", "WaveGANDiscriminator", "SpecGANGenerator", "SpecGANDiscriminator",
           "TiFGANGenerator", "TiFGANDiscriminator", "PhaseShuffle", "GENERATORS", "DISCRIMINATORS",
           "KWSClassifier", "save_classifier", "load_classifier", "is_classifier"]

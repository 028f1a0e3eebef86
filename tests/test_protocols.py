"""Issue 23.3: the contracts are typing.Protocols, and every implementation keeps them."""

from __future__ import annotations

import inspect
import pickle

import pytest
import torch
from augment_helpers import conditional_ckpt

from ganaug.augment import FilteredSource, GeneratorSource, LabelFilter, SyntheticBank, generate_bank
from ganaug.augment.source import ClipSource
from ganaug.models import GENERATORS, KWSClassifier
from ganaug.models.family import GeneratorFamily


def _protocol_members(protocol) -> dict:
    return {name: member for name, member in vars(protocol).items()
            if callable(member) and not name.startswith("_")}


def _keeps_signature(method, contract) -> bool:
    """``method`` takes the contract's parameters, in order, with the same defaults; any further ones have defaults."""
    want = list(inspect.signature(contract).parameters.values())
    have = list(inspect.signature(method).parameters.values())
    if [p.name for p in have[:len(want)]] != [p.name for p in want]:
        return False
    if any(w.default is not inspect.Parameter.empty and h.default != w.default for w, h in zip(want, have)):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in have[len(want):])


@pytest.mark.parametrize("family", sorted(GENERATORS))
def test_every_generator_family_is_a_generator_family(family):
    cls = GENERATORS[family]
    G = cls(model_dim=4, label_names=["yes", "no"])
    assert isinstance(G, GeneratorFamily)
    for name, contract in _protocol_members(GeneratorFamily).items():
        assert _keeps_signature(getattr(cls, name), contract), f"{cls.__name__}.{name} breaks the GeneratorFamily signature"
    assert not isinstance(KWSClassifier(["yes"]), GeneratorFamily)   # the check can fail


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocols")
    generator = GeneratorSource(conditional_ckpt(root))
    bank = generate_bank(conditional_ckpt(root), root / "bank", per_label=2, progress=False)
    clf = KWSClassifier(["yes", "no"], channels=8, num_blocks=1)
    filtered = FilteredSource(generator, LabelFilter(clf, 0.01))
    return {"generator": generator, "bank": bank, "filtered": filtered,
            "filtered_bank": FilteredSource(bank, LabelFilter(clf, 0.01))}


@pytest.mark.parametrize("kind", ["generator", "bank", "filtered", "filtered_bank"])
def test_every_source_is_a_clip_source_and_keeps_its_contract(sources, kind):
    source = sources[kind]
    assert isinstance(source, ClipSource)
    for name, contract in _protocol_members(ClipSource).items():
        assert _keeps_signature(getattr(type(source), name), contract), f"{type(source).__name__}.{name}"
    assert source.load() is source and source.label_names == ["yes", "no"] and source.sample_rate == 16000
    clips, accepted = source.sample(["yes", "no"], [1, 2])
    assert clips.shape == (2, 16384) and accepted.dtype == torch.bool
    torch.testing.assert_close(source.generate(["no"], [2])[0], source.generate(["yes", "no"], [1, 2])[1],
                               atol=1e-4, rtol=1e-3)   # row i depends on (names[i], seeds[i]) only
    with pytest.raises(ValueError, match=r"\['maybe'\]"):
        source.check_names(["yes", "maybe"])
    assert isinstance(source.fingerprint(), str) and source.filter_config()["label_names"] == ["yes", "no"]


def test_filtered_source_forwards_nothing_implicitly(sources):
    """No __getattr__: a member that is not in the contract is an AttributeError, not the wrapped source's."""
    filtered = sources["filtered"]
    assert "__getattr__" not in vars(FilteredSource)
    with pytest.raises(AttributeError):
        filtered.entries   # GeneratorSource's own, not the protocol's
    copy = pickle.loads(pickle.dumps(filtered))
    assert copy.label_names == filtered.label_names and copy.tried == {}
    assert isinstance(sources["bank"], SyntheticBank) and not isinstance(object(), ClipSource)

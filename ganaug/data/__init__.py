"""Keyword datasets: folders (Speech Commands, FSDD), HF datasets and SpeechBrain manifests."""

from ganaug.data.dataset import KeywordDataset
from ganaug.data.download import download
from ganaug.data.readers import decode_hf_audio, from_hf, from_manifest

__all__ = ["KeywordDataset", "download", "from_hf", "from_manifest", "decode_hf_audio"]

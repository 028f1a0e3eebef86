"""Every code block of README.md runs as written, on the shared data at small sizes (issue 15).

The blocks run in README order in one working folder, so later blocks use what earlier ones
wrote (``runs/cond``, ``banks/cond``). Its ``data/`` holds small copies of the shared corpora,
already "downloaded" (``download()`` finds their completion marker), so the README's own
``download()`` calls run; ``../shared`` points at the shared folder. An HTML comment right before a
block may say ``readme: skip: WHY`` (WHY names the test or script that runs it instead) or
``readme: sub: OLD => NEW ; OLD => NEW`` (smaller sizes, the CPU for CUDA, a filter threshold that a
two-step generator can pass): nothing else is changed.
The reference classifier of the small data is trained beforehand with a short recipe, where ganaug
keeps it (as ``ganaug demo`` leaves one): the README's commands find it, as a user's would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from conftest import KEYWORDS, REPO, SHARED_DATA

README = REPO / "README.md"
BLOCK = re.compile(r"(?:<!-- readme: (?P<directive>[^\n]*?) -->\n)?```(?P<lang>[a-z]+)\n(?P<body>.*?)```", re.S)
RUNNABLE = {"bash", "python", "yaml"}
COMPLETE_MARKER = ".ganaug_complete"   # ganaug.data.download's marker of a finished extraction


def readme_blocks() -> list[dict]:
    blocks = []
    for m in BLOCK.finditer(README.read_text()):
        if m["lang"] not in RUNNABLE:
            continue
        line = README.read_text()[: m.start("body")].count("\n") + 1
        blocks.append({"lang": m["lang"], "body": m["body"], "directive": m["directive"] or "", "line": line})
    return blocks


def apply_directive(block: dict) -> str | None:
    """The code to run (``None``: skipped), after the block's ``sub:`` replacements."""
    kind, _, rest = block["directive"].partition(":")
    if kind == "skip":
        return None
    code = block["body"]
    if kind == "sub":
        for pair in rest.split(" ; "):
            old, sep, new = pair.strip().partition(" => ")
            assert sep and old in code, f"README.md:{block['line']}: sub {old!r} matches nothing in its block"
            code = code.replace(old, new)
    else:
        assert not kind, f"README.md:{block['line']}: unknown directive {block['directive']!r}"
    return code


def _copy(src: Path, dst: Path) -> None:
    data, rate = sf.read(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, data, rate)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """``project/`` with ``data/speech_commands_v0.02`` (10 keywords, 24 speakers, _silence_, _unknown_),
    ``data/fsdd`` (2 recordings per digit and speaker), and ``../shared`` -> the shared folder."""
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").symlink_to(SHARED_DATA.parent.resolve())
    project = root / "project"
    sc = project / "data" / "speech_commands_v0.02"
    speakers = {}
    for label in KEYWORDS:
        for f in (SHARED_DATA / "speech_commands" / label).glob("*.flac"):
            speakers.setdefault(f.name.split("_nohash_")[0], []).append(f)
    chosen = sorted(speakers, key=lambda s: (-len(speakers[s]), s))[:24]
    for speaker in chosen:   # as WAV files, like the downloaded corpus (torchaudio's SPEECHCOMMANDS reads only those)
        for f in speakers[speaker]:
            _copy(f, sc / f.parent.name / f"{f.stem}.wav")
    for label, count in (("_silence_", 6), ("_unknown_", 12)):
        for f in sorted((SHARED_DATA / "speech_commands" / label).glob("*.flac"))[:count]:
            _copy(f, sc / label / f"{f.stem}.wav")
    (sc / COMPLETE_MARKER).touch()
    fsdd = project / "data" / "fsdd"
    for f in sorted((SHARED_DATA / "fsdd").glob("*.wav")):
        if int(f.stem.rsplit("_", 1)[1]) < 2:
            _copy(f, fsdd / f.name)
    (fsdd / COMPLETE_MARKER).touch()
    from ganaug.kws.reference import ensure_reference

    cwd = Path.cwd()
    os.chdir(project)   # the README names the data by this relative path; the classifier's place depends on its files only
    try:
        ensure_reference(Path("data/speech_commands_v0.02"), KEYWORDS, device="cpu", progress=False,
                         overrides={"number_of_epochs": 2, "classic_augment": False, "channels": 16, "num_blocks": 2})
    finally:
        os.chdir(cwd)
    return project


class Runner:
    """Runs the README's blocks in order, once each, and remembers how each ended."""

    def __init__(self, workdir: Path):
        self.workdir, self.done = workdir, {}
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    "OMP_NUM_THREADS": "2", "TQDM_DISABLE": "1"}

    def run(self, index: int, blocks: list[dict]):
        for i in range(index + 1):
            if i not in self.done:
                self.done[i] = self._run(blocks[i])
        return self.done[index]

    def _run(self, block: dict):
        code = apply_directive(block)
        if code is None:
            return None
        if block["lang"] == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        elif block["lang"] == "python":
            cmd = [sys.executable, "-c", code]
        else:   # a HyperPyYAML snippet: it must load, objects and all
            cmd = [sys.executable, "-c", "import sys; from hyperpyyaml import load_hyperpyyaml; "
                                         "print(load_hyperpyyaml(sys.stdin.read()))"]
        return subprocess.run(cmd, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=1800,
                              input=code if block["lang"] == "yaml" else None)


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def runner(workdir) -> Runner:
    return Runner(workdir)


def test_readme_has_blocks_and_every_skip_names_what_runs_it_instead():
    assert len(BLOCKS) >= 12
    for block in BLOCKS:
        kind, _, why = block["directive"].partition(":")
        if kind == "skip":
            assert re.search(r"tests/test_\w+\.py|\.ci/run", why), f"README.md:{block['line']}: skip without a reason"


RUN = [i for i, b in enumerate(BLOCKS) if not b["directive"].startswith("skip:")]   # the others: see the test above


@pytest.mark.parametrize("index", RUN, ids=[f"line{BLOCKS[i]['line']}" for i in RUN])
def test_readme_block_runs(index, runner, workdir):
    block = BLOCKS[index]
    result = runner.run(index, BLOCKS)
    tail = (result.stdout[-2000:] + "\n" + result.stderr[-4000:]).strip()
    assert result.returncode == 0, f"README.md:{block['line']} failed (exit {result.returncode}):\n{tail}"
    assert "Traceback" not in result.stderr, tail
    body = block["body"]
    # what the blocks promise, checked on disk
    if "--output_folder=runs/cond" in body:
        assert (workdir / "runs/cond/generator.safetensors").is_file()
        assert (workdir / "runs/kw/yes/generator.safetensors").is_file()
    if "--out banks/cond_kept" in body:
        assert "acceptance" in result.stdout and (workdir / "banks/cond_kept/bank.json").is_file()
    if "ganaug evaluate" in body:
        assert (workdir / "runs/cond/eval/metrics.json").is_file()
        assert (workdir / "runs/cond/report/index.html").is_file()
    if "replicate_labels(command).flatten()" in body:   # SpeechBrain: 4 rows x (original + 3 augmentations)
        assert "torch.Size([16, 16000]) " + str([0, 1, 2, 3] * 4) in result.stdout
    if "GanMixDataset(train_set" in body:               # torchaudio: (B, 1, 8000) batches, 0.5 synthetic per real
        shape, real, mixed = re.search(r"torch.Size\(\[(\d+), 1, 8000\]\) (\d+) (\d+)", result.stdout).groups()
        assert int(real) < int(mixed) <= int(real) * 1.5 + 10
    if "hf_map(ratio=0.5" in body:                      # HF: synthetic rows in the train split only
        raw, train, synthetic, test = map(int, result.stdout.split()[-4:])
        assert train == raw + synthetic and 0 < synthetic <= raw // 2 + 1 and test > 0
    if "['zero', 'one', 'two']" in body:
        assert "['zero', 'one', 'two']" in result.stdout
    if "ganaug listen ../shared" in body:
        assert (workdir / "runs/listen/index.html").is_file() or any((workdir / "runs/listen").iterdir())
    if "ganaug ablate" in body:
        assert (workdir / "runs/ablation/results.md").is_file() and (workdir / "runs/ablation_quick/results.md").is_file()

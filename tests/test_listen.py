"""The blind listening test without a browser: build on the shared generator, serve over HTTP, score."""

from __future__ import annotations

import json
import math
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import stats

from ganaug.cli import main as cli_main
from ganaug.data import KeywordDataset
from ganaug.ablation.stats import wilson_interval
from ganaug.listen import ListenError, build_test, make_server, score_test
from ganaug.listen.serve import listener_order
from ganaug.listen.store import read_answers

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED_GENERATOR = Path(__file__).resolve().parents[2] / "shared" / "generators" / "wavegan_sc10_h100_5k_ema"


@pytest.fixture(scope="module")
def generator() -> Path:
    assert (SHARED_GENERATOR / "config.json").is_file(), f"shared generator missing at {SHARED_GENERATOR}"
    return SHARED_GENERATOR


@pytest.fixture(scope="module")
def built(tmp_path_factory, generator, sc_root) -> Path:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("listen") / "test"
    build_test([generator], sc_root, out, per_label=1, seed=3, progress=False)
    return out


@pytest.fixture
def fresh(tmp_path, built) -> Path:
    """A copy of the built test with no answers, for tests that write answers."""
    import shutil

    out = tmp_path / "test"
    shutil.copytree(built, out)
    return out


@pytest.fixture
def server(fresh):
    srv = make_server(fresh, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(srv, path):
    url = f"http://127.0.0.1:{srv.server_address[1]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers.get("Content-Type"), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read()


def _post(srv, obj):
    data = json.dumps(obj).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{srv.server_address[1]}/api/answer", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# -- build ------------------------------------------------------------------------------------

def test_build_writes_an_anonymous_test_and_a_key(built, generator, sc_root):
    test = json.loads((built / "test.json").read_text())
    key = json.loads((built / "key.json").read_text())
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    assert test["labels"] == labels and test["choices"] == labels + ["can't tell"]
    assert set(key["systems"]) == {"real", generator.name}
    assert len(test["items"]) == 20 and set(key["items"]) == {item["id"] for item in test["items"]}
    # nothing the browser gets names a system, a checkpoint or a source file
    public = (built / "test.json").read_text() + "".join(p.name for p in (built / "clips").iterdir())
    for secret in ("real", generator.name, "wavegan", "nohash", "speech_commands", "system"):
        assert secret not in public
    for page in ("index.html", "listen.js", "listen.css"):
        text = (built / page).read_text()
        assert "http://" not in text and "https://" not in text  # offline: no CDN, no external fonts
    # per system: one clip per label; a block holds clips of one system only
    for system in key["systems"]:
        assert sorted(i["label"] for i in key["items"].values() if i["system"] == system) == sorted(labels)
    for item in test["items"]:
        assert key["blocks"][item["block"]] == key["items"][item["id"]]["system"]
    # clips: 16-bit PCM WAV at the generator's rate and length, peak-normalised, not silent
    for item in test["items"]:
        info = sf.info(str(built / item["file"]))
        assert (info.format, info.subtype, info.samplerate, info.frames) == ("WAV", "PCM_16", 16000, 16384)
        wav, _ = sf.read(str(built / item["file"]))
        assert 0.85 < np.abs(wav).max() <= 0.91
    # real clips come from held-out speakers: none of them is in the split the generator was trained on
    train = {c.speaker for c in KeywordDataset(sc_root, labels=labels, split="train").clips}
    real = [Path(i["path"]) for i in key["items"].values() if i["system"] == "real"]
    assert len(real) == 10 and all(p.is_file() for p in real)
    assert not {p.name.split("_nohash_")[0] for p in real} & train


def test_build_refuses_to_overwrite_answers_and_bad_input(fresh, generator, sc_root, tmp_path):
    (fresh / "answers" / "someone.jsonl").write_text('{"kind": "clip"}\n')
    with pytest.raises(ListenError, match="holds answers"):
        build_test([generator], sc_root, fresh, per_label=1)
    assert (fresh / "answers" / "someone.jsonl").read_text() == '{"kind": "clip"}\n'
    with pytest.raises(ListenError, match="--data"):
        build_test([generator], tmp_path / "nowhere", tmp_path / "t1", per_label=1)
    with pytest.raises(ListenError, match="--per-label"):
        build_test([generator], sc_root, tmp_path / "t2", per_label=0)
    with pytest.raises(ListenError, match="fewer than --per-label 500"):
        build_test([generator], sc_root, tmp_path / "t3", per_label=500, progress=False)
    with pytest.raises(ListenError, match="no such checkpoint"):
        build_test([tmp_path / "missing"], sc_root, tmp_path / "t4", per_label=1)


# -- serve ------------------------------------------------------------------------------------

def test_server_serves_the_page_and_clips_never_the_key(server, fresh):
    assert server.server_address[0] == "127.0.0.1"
    status, ctype, body = _get(server, "/")
    assert status == 200 and ctype.startswith("text/html") and b"listen.js" in body
    item = json.loads((fresh / "test.json").read_text())["items"][0]
    status, ctype, body = _get(server, "/" + item["file"])
    assert status == 200 and ctype == "audio/wav" and body == (fresh / item["file"]).read_bytes()
    (fresh / "answers" / "x.jsonl").write_text("{}\n")
    for path in ("/key.json", "/test.json", "/answers/x.jsonl", "/clips/../key.json", "/%2e%2e/key.json",
                 "/clips/c0000000000.wav", "/api/state"):
        status, _, body = _get(server, path)
        assert status in (400, 404), path
        assert b"system" not in body


def test_server_saves_validated_answers_and_reports_state(server, fresh):
    test = json.loads((fresh / "test.json").read_text())
    first, second = test["items"][0]["id"], test["items"][1]["id"]
    status, state = 200, json.loads(_get(server, "/api/state?listener=ann")[2])
    assert state["answered"] == [] and [i["id"] for i in state["items"]] == [i["id"] for i in listener_order(test, "ann")]
    assert sorted(i["id"] for i in state["items"]) == sorted(i["id"] for i in test["items"])
    # an order groups each block's clips together and is the same on every call
    blocks = [i["block"] for i in state["items"]]
    assert blocks == sorted(blocks, key=blocks.index)
    assert json.loads(_get(server, "/api/state?listener=ann")[2])["items"] == state["items"]

    ok = {"listener": "ann", "kind": "clip", "id": first, "label": "yes", "quality": 4, "intelligibility": 5}
    for bad, word in (({**ok, "quality": 6}, "quality"), ({**ok, "quality": True}, "quality"),
                      ({**ok, "label": "maybe"}, "label"), ({**ok, "id": "c0000000000"}, "id"),
                      ({**ok, "listener": "../key"}, "listener"), ({**ok, "kind": "other"}, "kind")):
        status, reply = _post(server, bad)
        assert status == 400 and word in reply["error"]
    for raw in (b"not json", b"[1, 2]"):
        req = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/api/answer", data=raw)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 400
    assert not (fresh / "answers" / "ann.jsonl").exists()
    assert _post(server, ok)[0] == 200
    assert _post(server, {**ok, "id": second, "label": "can't tell"})[0] == 200
    assert _post(server, {"listener": "ann", "kind": "diversity", "block": test["blocks"][0], "diversity": 2})[0] == 200
    lines = (fresh / "answers" / "ann.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["clip", "clip", "diversity"]
    assert json.loads(lines[0])["quality"] == 4 and json.loads(lines[1])["label"] == "can't tell"
    state = json.loads(_get(server, "/api/state?listener=ann")[2])
    assert state["answered"] == sorted([first, second]) and state["rated_blocks"] == [test["blocks"][0]]
    assert json.loads(_get(server, "/api/state?listener=bob")[2])["answered"] == []


def test_server_port_in_use_is_one_clear_error(server, fresh):
    with pytest.raises(ListenError, match="--port"):
        make_server(fresh, port=server.server_address[1])
    with pytest.raises(ListenError, match="--port 70000"):
        make_server(fresh, port=70000)


# -- score ------------------------------------------------------------------------------------

def test_wilson_matches_scipy():
    for correct, n in ((8, 10), (0, 10), (10, 10), (37, 50), (1, 3)):
        ci = stats.binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(correct, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert wilson_interval(0, 0) is None


def test_score_merges_listeners_last_answer_wins(fresh):
    from ganaug.listen.store import answer_path, append_answer

    test = json.loads((fresh / "test.json").read_text())
    key = json.loads((fresh / "key.json").read_text())
    expected = {s: {"correct": 0, "n": 0, "quality": [], "intel": [], "div": []} for s in key["systems"]}
    rng = np.random.default_rng(0)
    for listener in ("ann", "bob"):
        path = answer_path(fresh, listener)
        for k, item in enumerate(test["items"]):
            truth = key["items"][item["id"]]["label"]
            if listener == "ann" and k == 0:  # answered twice: the second answer counts
                append_answer(path, {"listener": listener, "kind": "clip", "id": item["id"], "label": "go",
                                     "quality": 1, "intelligibility": 1})
            label = truth if rng.random() < 0.6 else ("can't tell" if rng.random() < 0.5 else "no" if truth != "no" else "up")
            q, i = int(rng.integers(1, 6)), int(rng.integers(1, 6))
            append_answer(path, {"listener": listener, "kind": "clip", "id": item["id"], "label": label,
                                 "quality": q, "intelligibility": i})
            e = expected[key["items"][item["id"]]["system"]]
            e["n"] += 1
            e["correct"] += label == truth
            e["quality"].append(q)
            e["intel"].append(i)
        for block in test["blocks"]:
            d = int(rng.integers(1, 6))
            append_answer(path, {"listener": listener, "kind": "diversity", "block": block, "diversity": d})
            expected[key["blocks"][block]]["div"].append(d)
    with open(answer_path(fresh, "bob"), "a") as f:
        f.write('{"listener": "bob", "kind": "clip", "id": "c')  # torn last line: skipped

    summary = score_test(fresh)
    assert summary["listeners"] == ["ann", "bob"] and summary["answers"] == 40 and summary["skipped_lines"] == 1
    for name, e in expected.items():
        s = summary["systems"][name]
        assert (s["answers"], s["correct"], s["listeners"], s["clips"]) == (e["n"], e["correct"], 2, 10)
        assert s["accuracy"] == pytest.approx(e["correct"] / e["n"])
        assert s["accuracy_ci95"] == pytest.approx(list(wilson_interval(e["correct"], e["n"])))
        for field, values in (("quality", e["quality"]), ("intelligibility", e["intel"]), ("diversity", e["div"])):
            n = len(values)
            half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
            assert s[field]["mean"] == pytest.approx(np.mean(values))
            assert s[field]["ci95"] == pytest.approx(half, rel=1e-3)
            low, high = s[field]["ci95_range"]                          # the interval stays on the 1-5 scale
            assert low == pytest.approx(max(1.0, np.mean(values) - half)) and high == pytest.approx(min(5.0, np.mean(values) + half))
        counts = np.array(s["confusion"]["counts"])
        assert counts.sum() == e["n"] and np.trace(counts) == e["correct"]
        png = fresh / "score" / s["confusion_png"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (fresh / "score" / "results.md").read_text()
    assert table.startswith("| system |") and "| real |" in table
    assert json.loads((fresh / "score" / "results.json").read_text()) == json.loads(json.dumps(summary))
    records, problems = read_answers(sorted((fresh / "answers").glob("*.jsonl")), lambda record: record)
    assert len(records) == 2 * 22 + 1 and problems == [f"{answer_path(fresh, 'bob')}:23: not valid JSON: "
                                                       f"Unterminated string starting at: line 1 column 43 (char 42)"]


def test_cli_listen_modes(fresh, capsys):
    assert cli_main(["listen"]) == 2
    assert "give one of" in capsys.readouterr().err
    assert cli_main(["listen", "--score", str(fresh)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no answer files" in err
    assert cli_main(["listen", "--serve", str(fresh / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


# -- hostile answers (issue 25, item 7) ----------------------------------------------------------------
def test_score_checks_every_line_names_the_bad_ones_and_skips_them(fresh):
    from ganaug.listen.store import answer_path, append_answer

    test = json.loads((fresh / "test.json").read_text())
    first, block = test["items"][0]["id"], test["blocks"][0]
    ok = {"listener": "ann", "kind": "clip", "id": first, "label": "yes", "quality": 4, "intelligibility": 2}
    path = answer_path(fresh, "ann")
    append_answer(path, ok)
    append_answer(path, {"listener": "ann", "kind": "diversity", "block": block, "diversity": 3})
    bad = [json.dumps({**ok, "quality": 13}),                       # was: a mean of 13.50 in [1.00, 5.00]
           json.dumps({**ok, "intelligibility": None}),              # was: a TypeError traceback
           json.dumps({**ok, "id": [first]}),                        # was: unhashable list
           json.dumps({k: v for k, v in ok.items() if k != "label"}),  # was: KeyError 'label'
           json.dumps(ok).replace('"quality": 4', '"quality": NaN'),
           json.dumps({"listener": "ann", "kind": "diversity", "block": block, "diversity": 0}),
           json.dumps({**ok, "id": "c0123456789"}),                  # a clip of another test
           json.dumps({**ok, "listener": "ann\n"}), "[1, 2]"]
    with open(path, "ab") as f:
        f.write(("\n".join(bad) + "\n").encode() + b'{"listener": "ann", "label": "\xff"}\n')   # invalid UTF-8
    with pytest.warns(UserWarning, match=f"10 answer line\\(s\\) skipped: {path}:3: quality=13: give a whole number"):
        summary = score_test(fresh)
    assert [p.split(": ")[0] for p in summary["skipped"]] == [f"{path}:{n}" for n in range(3, 13)]
    for problem, word in zip(summary["skipped"], ("quality=13", "intelligibility=None", "id=['", "label=None",
                                                  "NaN is not a number", "diversity=0", "not a clip of this test",
                                                  "listener id 'ann\\n'", "not list", "not UTF-8")):
        assert word in problem, (word, problem)
    real = next(s for s in summary["systems"].values() if s["answers"])
    assert real["quality"]["mean"] == 4 and real["intelligibility"]["mean"] == 2 and summary["answers"] == 1
    assert sum(s["diversity"]["n"] for s in summary["systems"].values() if s["diversity"]) == 1
    assert f"- {path}:3: quality=13" in (fresh / "score" / "results.md").read_text()


def _post_raw(srv, body: bytes):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.server_address[1]}/api/answer", data=body)
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_answers_hostile_bodies_with_400_and_one_log_line(server, fresh, capfd):
    item = json.loads((fresh / "test.json").read_text())["items"][0]["id"]
    ok = {"listener": "ann", "kind": "clip", "id": item, "label": "yes", "quality": 4, "intelligibility": 5}
    cases = [(json.dumps({**ok, "listener": "ann\n"}).encode(), "listener id"),     # was: saved as ann\n
             (json.dumps(ok).replace("}", ', "plays": NaN}').encode(), "NaN"),     # was: NaN in the file
             (json.dumps(ok).replace("}", ', "elapsed_ms": -Infinity}').encode(), "Infinity"),
             (b"[" * 8000 + b"]" * 8000, "nested too deeply"),                   # was: a dropped connection
             (b'{"listener": "\xff"}', "utf-8")]
    for body, word in cases:
        status, reply = _post_raw(server, body)
        assert status == 400 and word in reply["error"], (word, reply)
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.count("\n") == len(cases) and err.count("ganaug listen: POST /api/answer: 400") == 5
    assert _post_raw(server, json.dumps(ok).replace("}", ', "elapsed_ms": 1e999}').encode())[0] == 200   # inf: dropped
    (line,) = (fresh / "answers" / "ann.jsonl").read_text().splitlines()
    assert "elapsed_ms" not in json.loads(line) and "Infinity" not in line


def test_server_answers_500_with_one_log_line_when_the_answers_folder_cannot_be_written(server, fresh, capfd):
    from test_io import read_only_folder

    answers = fresh / "answers"
    shutil.rmtree(answers, ignore_errors=True)
    with read_only_folder(answers):
        item = json.loads((fresh / "test.json").read_text())["items"][0]["id"]
        ok = {"listener": "ann", "kind": "clip", "id": item, "label": "yes", "quality": 4, "intelligibility": 5}
        status, reply = _post(server, ok)                                 # was: a dropped connection, a traceback
        assert status == 500 and reply["error"] == f"answer not saved: cannot write to {answers} (read-only)"
        err = capfd.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1 and "500 answer not saved" in err
        assert _get(server, "/api/state?listener=ann")[0] == 200             # the server serves on

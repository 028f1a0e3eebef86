"""The listening test in a real browser: headless Chromium (system package) driven by Selenium.

Builds a test from the shared generator with the CLI, serves it in a subprocess, and answers all
twenty clips and both diversity questions with the keyboard alone; reloads mid-way (the page must
resume at the first unanswered clip), kills the server mid-way (the answer is kept on the page and
saved once the server is back), then checks the saved JSON lines and ``ganaug listen --score``.

Needs ``chromium`` and ``chromedriver`` (Debian: ``apt-get install chromium chromium-driver``);
set GANAUG_CHROMIUM / GANAUG_CHROMEDRIVER to use others. With GANAUG_LISTEN_SCREENSHOT=PATH the
test also saves a screenshot of the page there (docs/listening.png is made this way).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from test_listen import SHARED_GENERATOR

LABEL_KEYS = "1234567890abcdefghijklmnopqrstuvwyz"
TIMEOUT = 30


def _executable(env: str, *names: str) -> str:
    path = os.environ.get(env) or next((shutil.which(n) for n in names if shutil.which(n)), None)
    assert path, (f"{' or '.join(names)} not found: install the system packages (apt-get install chromium "
                  f"chromium-driver) or set {env}")
    return path


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = _executable("GANAUG_CHROMIUM", "chromium", "chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                "--window-size=900,800", "--mute-audio"):
        options.add_argument(arg)
    service = Service(executable_path=_executable("GANAUG_CHROMEDRIVER", "chromedriver"))
    browser = webdriver.Chrome(service=service, options=options)
    yield browser
    browser.quit()


class Server:
    """``ganaug listen --serve DIR`` in a subprocess; knows its URL."""

    def __init__(self, folder: Path, port: int = 0):
        self.proc = subprocess.Popen([sys.executable, "-m", "ganaug.cli", "listen", "--serve", str(folder),
                                      "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"server did not start: {line}{self.proc.stdout.read() if self.proc.poll() is not None else ''}"
        self.url, self.port = match.group(0), int(match.group(1))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self.proc.stdout.close()


def _run(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "ganaug.cli", "listen", *args], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    return result


def _js(driver, script):
    return driver.execute_script(script)


def _state(driver):
    return _js(driver, "const s = document.body.dataset.step; const el = document.getElementById(s);"
                       "return [s, el && el.dataset.id, document.getElementById('progress-text').textContent,"
                       "document.getElementById('status').textContent, document.getElementById('plays').textContent]")


def _keys(driver, *keys):
    ActionChains(driver).send_keys(*keys).perform()


def _wait(driver, predicate, what):
    WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(lambda d: predicate(), message=what)


def test_answer_twenty_clips_with_the_keyboard(tmp_path, driver, sc_root):
    folder = tmp_path / "listen"
    _run(str(SHARED_GENERATOR), "--data", str(sc_root), "--out", str(folder), "--per-label", "1", "--seed", "0")
    key = json.loads((folder / "key.json").read_text())
    labels = key["labels"]
    server = Server(folder)
    try:
        driver.get(server.url)
        _wait(driver, lambda: _state(driver)[0] == "clip", "the first clip to show")
        assert "Clip 1 of 20" in _state(driver)[2]

        # the clip really plays (Space replays it)
        _keys(driver, Keys.SPACE)
        _wait(driver, lambda: _js(driver, "const a = document.getElementById('audio');"
                                          "return a.currentTime > 0 || a.ended"), "the audio element to play")
        _wait(driver, lambda: _state(driver)[4].startswith("played"), "the page to count the play")
        assert _js(driver, "return document.getElementById('audio').duration") == pytest.approx(16384 / 16000, abs=0.01)

        # Enter before all three answers: nothing is saved, the page says what is missing
        _keys(driver, "1", Keys.ENTER)
        _wait(driver, lambda: "first" in _state(driver)[3], "the page to ask for the missing ratings")
        assert "quality" in _state(driver)[3] and not list((folder / "answers").iterdir())
        _keys(driver, Keys.ARROW_UP)  # back to question 1: the label is picked again below

        given, diversity, seen = {}, [], []
        k = 0
        while True:
            step, ref, progress, _, _ = _state(driver)
            if step == "done":
                break
            if step == "diversity":
                rating = 1 + len(diversity) % 5
                _keys(driver, str(rating), Keys.ENTER)
                _wait(driver, lambda: _state(driver)[:2] != [step, ref], "the diversity answer to be saved")
                diversity.append((ref, rating))
                continue
            assert ref not in given and f"Clip {k + 1} of 20" in progress
            seen.append(ref)
            truth = key["items"][ref]["label"]
            label = ("can't tell" if k % 4 == 3 else labels[(labels.index(truth) + 1) % len(labels)] if k % 4 == 2
                     else truth)
            press = "x" if label == "can't tell" else LABEL_KEYS[labels.index(label)]
            quality, intelligibility = 1 + k % 5, 1 + (k + 2) % 5
            _wait(driver, lambda: _state(driver)[4].startswith("played"), f"clip {k + 1} to play")

            if k == 7:  # reload with an unsaved answer: the page comes back at this clip, answers cleared
                _keys(driver, press, str(quality))
                driver.refresh()
                _wait(driver, lambda: _state(driver)[0] == "clip", "the page to come back")
                step2, ref2, progress2, _, _ = _state(driver)
                assert ref2 == ref and "7 answered" in progress2 and "Clip 8 of 20" in progress2
                assert _js(driver, "return document.querySelectorAll('#clip [aria-pressed=true]').length") == 0
                _wait(driver, lambda: _state(driver)[4].startswith("played"), "the clip to play after the reload")

            if k == 13:  # the server dies: the answer stays on the page, and is saved when it is back
                port = server.port
                server.kill()
                _keys(driver, press, str(quality), str(intelligibility), Keys.ENTER)
                _wait(driver, lambda: "Not saved" in _state(driver)[3], "the page to report the failed save")
                assert _state(driver)[1] == ref
                server = Server(folder, port=port)
                _keys(driver, Keys.ENTER)
            else:
                _keys(driver, press, str(quality), str(intelligibility), Keys.ENTER)
            _wait(driver, lambda: _state(driver)[1] != ref, f"clip {k + 1} to be saved")
            given[ref] = (label, quality, intelligibility)
            k += 1

        assert len(given) == 20 and len(diversity) == 2
        assert "20 of 20" in _state(driver)[2]
    finally:
        server.kill()

    # the saved answers are exactly the ones given, one line each (the failed save left no trace)
    listener = _js(driver, "return localStorage.getItem('ganaug-listen-listener')")
    lines = [json.loads(line) for line in (folder / "answers" / f"{listener}.jsonl").read_text().splitlines()]
    clips = [r for r in lines if r["kind"] == "clip"]
    assert [r["id"] for r in clips] == seen
    assert {r["id"]: (r["label"], r["quality"], r["intelligibility"]) for r in clips} == given
    assert [(r["block"], r["diversity"]) for r in lines if r["kind"] == "diversity"] == diversity
    assert all(r["listener"] == listener and r["plays"] >= 1 for r in clips)

    # the scores are those of the answers given
    out = _run("--score", str(folder)).stdout
    summary = json.loads((folder / "score" / "results.json").read_text())
    for system in key["systems"]:
        mine = [(key["items"][i]["label"], a) for i, a in given.items() if key["items"][i]["system"] == system]
        s = summary["systems"][system]
        assert s["answers"] == len(mine) == 10
        assert s["correct"] == sum(truth == a[0] for truth, a in mine)
        assert s["cant_tell"] == pytest.approx(sum(a[0] == "can't tell" for _, a in mine) / 10)
        assert s["quality"]["mean"] == pytest.approx(sum(a[1] for _, a in mine) / 10)
        assert s["intelligibility"]["mean"] == pytest.approx(sum(a[2] for _, a in mine) / 10)
        assert s["diversity"]["mean"] == [d for b, d in diversity if key["blocks"][b] == system][0]
        assert f"| {system} |" in out


def test_screenshot_of_a_clip(tmp_path, driver, sc_root):
    """The page as a listener first sees it; saved where GANAUG_LISTEN_SCREENSHOT says (for docs/)."""
    folder = tmp_path / "listen"
    _run(str(SHARED_GENERATOR), "--data", str(sc_root), "--out", str(folder), "--per-label", "1", "--seed", "1")
    server = Server(folder)
    try:
        driver.set_window_size(900, 940)
        driver.get(server.url)
        _wait(driver, lambda: _state(driver)[4].startswith("played"), "the first clip to play")
        _keys(driver, "3", "4")
        _wait(driver, lambda: _js(driver, "return document.querySelectorAll('#clip [aria-pressed=true]').length") == 2,
              "two answers to show as picked")
        png = driver.get_screenshot_as_png()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        target = os.environ.get("GANAUG_LISTEN_SCREENSHOT")
        if target:
            Path(target).write_bytes(png)
    finally:
        server.kill()

"""Render a ``ganaug report`` page in headless Chromium and save a screenshot.

    python bench/render_report.py runs/demo/report/index.html --png runs/demo/report/screenshot.png

Needs Debian's ``chromium`` (``apt-get install -y chromium``); tests do not, they parse the HTML
(tests/test_report.py). Checks that Chromium exits cleanly and writes a non-blank screenshot,
and that every ``<img>``/``<audio>`` the page names exists; prints what it found.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def render(index: Path, png: Path, width: int = 1200, height: int = 1600, timeout: int = 120) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no chromium found: `apt-get update && apt-get install -y chromium`")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
               index.resolve().as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not png.is_file():
        raise SystemExit(f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return png


def check_assets(index: Path) -> dict:
    text = index.read_text()
    sources = re.findall(r'<(?:img|audio)[^>]*\ssrc="([^"]+)"', text)
    missing = [s for s in sources if not (index.parent / s).is_file()]
    return {"images": len(re.findall(r"<img\s", text)), "players": len(re.findall(r"<audio\s", text)),
            "missing": missing}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="index.html written by `ganaug report`")
    parser.add_argument("--png", type=Path, default=None, help="screenshot path (default: next to index.html)")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args(argv)
    if not args.index.is_file():
        raise SystemExit(f"{args.index}: no such file; run `ganaug report CKPT --out DIR` first")
    assets = check_assets(args.index)
    png = render(args.index, args.png or args.index.with_name("screenshot.png"), args.width, args.height)
    from PIL import Image

    with Image.open(png) as im:
        extrema = im.convert("L").getextrema()
        size = im.size
    print(f"{args.index}: {assets['images']} images, {assets['players']} audio players, "
          f"{len(assets['missing'])} missing files; screenshot {png} {size[0]}x{size[1]}, grey range {extrema}")
    if assets["missing"]:
        print("missing:", *assets["missing"], sep="\n  ")
        return 1
    return 0 if extrema[0] != extrema[1] else 1


if __name__ == "__main__":
    sys.exit(main())

"""A blind human listening test of generators, as the WaveGAN paper ran it, in the browser.

``ganaug listen CKPT [CKPT ...] --data DIR --out DIR`` builds it (:func:`build_test`),
``ganaug listen --serve DIR`` serves it on 127.0.0.1 (:func:`serve`), ``ganaug listen --score DIR``
scores it (:func:`score_test`). See docs/listening.md.
"""

from __future__ import annotations

from pathlib import Path

from ganaug.errors import run_command
from ganaug.listen.build import ListenError, build_test, filtered_source
from ganaug.listen.score import score_test
from ganaug.listen.serve import make_server, serve

__all__ = ["build_test", "serve", "make_server", "score_test", "filtered_source", "ListenError", "main"]


def main(ckpt=(), data=None, out=None, per_label=5, seed=0, min_confidence=None, filter_classifier=None,
         serve_dir=None, port=8000, score_dir=None, device=None, noise_folder=None) -> int:
    """``ganaug listen``: build (CKPT... --data --out), serve (--serve DIR) or score (--score DIR) a test."""
    return run_command("ganaug listen", _listen, ckpt, data, out, per_label, seed, min_confidence, filter_classifier,
                       serve_dir, port, score_dir, device, noise_folder)


def _listen(ckpt, data, out, per_label, seed, min_confidence, filter_classifier, serve_dir, port, score_dir,
            device=None, noise_folder=None) -> int:
    modes = [m for m, on in (("--serve", serve_dir), ("--score", score_dir), ("CKPT", ckpt)) if on]
    if len(modes) != 1:
        raise ListenError("give one of: CKPT [CKPT ...] --data DIR --out DIR (build), --serve DIR, or --score DIR"
                          + (f" (got {' and '.join(modes)})" if modes else ""))
    if serve_dir:
        return serve(serve_dir, port)
    if score_dir:
        summary = score_test(score_dir)
        out_dir = Path(score_dir) / "score"
        print((out_dir / "results.md").read_text(), end="")
        print(f"wrote {out_dir}/results.md, results.json and {sum(1 for s in summary['systems'].values() if s['confusion_png'])} "
              f"confusion matrices")
        return 0
    if out is None:
        raise ListenError("--out DIR: say where to write the test (a new folder)")
    from ganaug.env import resolve_device

    device = resolve_device(device)
    test = build_test(list(ckpt), data, out, per_label=per_label, seed=seed, min_confidence=min_confidence,
                      filter_classifier=filter_classifier, device=device, noise_folder=noise_folder)
    print(f"wrote a blind test to {Path(out)} ({test.name}, clips/, page); the key is {Path(out) / 'key.json'} "
          f"(never served). Next: ganaug listen --serve {out}")
    return 0

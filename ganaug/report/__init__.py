"""``ganaug report CKPT --out DIR``: a static HTML page to listen to and look at a generator.

See :func:`ganaug.report.page.build_report`.
"""

from ganaug.report.page import build_report, main

__all__ = ["build_report", "main"]

"""The doctor for contrastive fine-tuning (issue #14): names each known way a run fails.

`python -m recipes.doctor RUN [--json]` reads a finished (or failed) run; `recipes.doctor.live`
runs the cheap checks while training. Findings are `Finding(code, severity, evidence, fix)` with the
codes in `recipes.doctor.findings.CODES` (design.md section 8).
"""

from recipes.doctor.diagnose import Report, diagnose
from recipes.doctor.findings import CODES, Finding
from recipes.doctor.run_reader import NotARunError

__all__ = ["CODES", "Finding", "NotARunError", "Report", "diagnose"]

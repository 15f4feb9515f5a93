"""The doctor for contrastive fine-tuning (issue #14): names each known way a run fails.

`python -m recipes.doctor RUN [--json]` reads a finished (or failed) run; `peftzoo_tools.doctor.live`
runs the cheap checks while training. Findings are `Finding(code, severity, evidence, fix)` with the
codes in `peftzoo_tools.doctor.findings.CODES` (docs/reference/doctor-codes.md).
"""

from peftzoo_tools.doctor.diagnose import Report, diagnose
from peftzoo_tools.doctor.findings import CODES, Finding
from peftzoo_tools.doctor.run_reader import NotARunError

__all__ = ["CODES", "Finding", "NotARunError", "Report", "diagnose"]

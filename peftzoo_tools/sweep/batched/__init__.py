"""Many heads at once: sweep trials that differ only in head, loss or optimizer settings, with both
encoders frozen and cached, trained in one process as one batched model (issue 13, item 3).

- eligibility.py: which trials qualify, and which of them can share one batched model
- stacked.py: the trials' heads and losses stacked over a leading trial dimension (one forward for all,
  through each component's declared `batched_forward` hook: adapters/heads/batched.py,
  peftzoo_model/losses/batched.py; a plugin head or loss with the hook joins like a built-in one)
- adamw.py: AdamW over the stacks, each trial with its own optimizer groups' lr and weight decay (fused kernel)
- checkpoint.py: one checkpoint per group (stacked weights, every trial's AdamW and schedule, RNG)
- trainer.py: the lockstep training loop writing each trial's ordinary run directory through the engine's
  public functions (start_run, log_epoch, count_nonfinite, record_evaluation, after_evaluation, finish_run)
- sweep_groups.py: the sweep command's grouping of fresh trials (--batched-heads auto)
"""

from peftzoo_tools.sweep.batched.eligibility import batch_key, unsupported_reason
from peftzoo_tools.sweep.batched.trainer import resume_batched, train_batched

__all__ = ["batch_key", "unsupported_reason", "train_batched", "resume_batched"]

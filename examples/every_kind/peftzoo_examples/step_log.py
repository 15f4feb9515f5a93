"""`step_log`: a training callback that records every optimizer step in RUN/<file> (one JSON line each), and
keeps its count of steps in checkpoints, so a resumed run counts on where it stopped (docs/plugins.md)."""

import json

from registry.component import ComponentConfig


class StepLogConfig(ComponentConfig):
    file: str = "steps.jsonl"
    every: int = 1  # record every `every`-th step


class StepLog:
    """Records each optimizer step (step, count, loss) in a file of the run directory."""

    description = "Records each optimizer step (step, loss) in a file of the run directory; resumes its count"
    Config = StepLogConfig

    @classmethod
    def from_config(cls, config, **context):
        return cls(config)

    def __init__(self, cfg):
        self.cfg, self.count, self.path = cfg, 0, None

    def on_run_start(self, ctx):
        if ctx.run.writes:
            self.path = ctx.run.path / self.cfg.file

    def on_step_end(self, ctx, loss, finite):
        self.count += 1
        if self.path is not None and self.count % self.cfg.every == 0:
            self._write(
                {
                    "step": ctx.progress.step,
                    "count": self.count,
                    "finite": finite,
                    "loss": float(loss.detach()) if finite else None,
                }
            )

    def on_run_end(self, ctx, status):
        if self.path is not None:
            self._write({"end": status, "count": self.count})

    def state_dict(self):
        return {"count": self.count}  # kept in checkpoints

    def load_state_dict(self, state):
        self.count = state["count"]

    def _write(self, line):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

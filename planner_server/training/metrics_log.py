"""Where a training run's numbers go: `metrics.jsonl` (always), TensorBoard event files beside it
(`RUN_DIR/tensorboard`, when tensorboard is installed: the `train` extra) and Weights & Biases (when
`report_to` names it and wandb is installed and logged in). Every mode writes the same row through it, so
the same keys reach every sink."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("rsim.train")


class MetricsLog:
    def __init__(self, run_dir: Path, report_to: list[str], *, resume_step: int = 0,
                 config: dict[str, Any] | None = None):
        self.file = (run_dir / "metrics.jsonl").open("a")
        self.tb = self.wandb = None
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed (pip install 'rsim[train]'): metrics go to metrics.jsonl "
                            "only")
            else:  # a resumed run drops the events of steps lost with the kill, as metrics.jsonl drops their rows
                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        if "wandb" in report_to:
            try:
                import wandb
            except ImportError as e:
                raise ValueError("report_to names wandb, which is not installed: pip install wandb") from e
            id_file = run_dir / "wandb-id"  # one W&B run per run folder, resumed with it
            run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
            id_file.write_text(run_id)
            self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "rsim"), dir=str(run_dir), id=run_id,
                                    name=run_dir.name, resume="allow", config=config or {})

    def write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        step = int(row["step"])
        scalars = {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                   and not isinstance(v, bool) and math.isfinite(v)}
        if self.tb is not None:
            for key, value in scalars.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()

"""Periodic evaluation during training (open_clip's ``--val-frequency`` / ``--zeroshot-frequency``).

``eval.every_steps: N`` evaluates the model every N optimizer steps, ``eval.every_epochs: N`` at the
end of every N-th epoch, on the tasks and data of the run's ``eval`` section (the same data
``synclip eval`` takes: ``eval.csv``, ``eval.image_folder``, ``eval.templates``, ...; ``eval.limit``
caps the images). Each result goes to ``metrics.jsonl`` and TensorBoard as
``val/<result name>/<metric>`` (:meth:`synclip.train.logging.MetricsLogger.log_eval`), so validation
curves sit beside the training loss. The request is checked when training starts, before the first
step. Only the main process evaluates; the others wait for it.
"""

from __future__ import annotations

import time

import torch

from synclip import distributed as dist
from synclip.api import ImagePreprocess
from synclip.config import RunConfig
from synclip.data.views import view_defaults


class PeriodicEval:
    """Decides when a step is due for validation and runs it on the training model."""

    def __init__(self, cfg: RunConfig, model, tokenizer, device: torch.device, logger):
        e = cfg.eval
        self.every_steps, self.every_epochs = e.every_steps, e.every_epochs
        self.enabled = bool(self.every_steps or self.every_epochs)
        self.cfg, self.model, self.tokenizer, self.device, self.logger = cfg, model, tokenizer, device, logger
        self.seconds = 0.0
        if self.enabled:
            from synclip.eval.run import check_request

            check_request(e.tasks, **e.data_options())  # fails before the first step
            options = dict(view_defaults("image"))
            options.update((cfg.views or {}).get("image") or {})
            options["size"] = model.image_size
            self.preprocess = ImagePreprocess(options, tokenizer)

    def due(self, step: int, steps_per_epoch: int) -> bool:
        if not self.enabled:
            return False
        if self.every_steps and step % self.every_steps == 0:
            return True
        epoch, within = divmod(step, steps_per_epoch)
        return bool(self.every_epochs) and within == 0 and epoch % self.every_epochs == 0

    def run(self, step: int) -> dict | None:
        """Evaluate now (main process; the others wait); returns the logged scalars there."""
        scalars = None
        if dist.is_main():
            from synclip.eval.run import evaluate

            e = self.cfg.eval
            start = time.perf_counter()
            result = evaluate(
                self.model,
                self.preprocess,
                self.tokenizer,
                tasks=e.tasks,
                device=self.device,
                batch_size=e.batch_size,
                limit=e.limit,
                **e.data_options(),
            )
            self.seconds += time.perf_counter() - start
            if self.logger is not None:
                scalars = self.logger.log_eval(step, result, prefix="val")
        dist.barrier()
        return scalars

"""``--benchmark NAME --data-root DIR``: a standard benchmark from a local copy (:mod:`synclip.eval.benchmark`)."""

from __future__ import annotations

from synclip.eval import benchmark as bm
from synclip.eval.task import EvalInputs, EvalTask
from synclip.registry import EVAL_TASKS


@EVAL_TASKS.register("benchmark")
class Benchmark(EvalTask):
    """ImageNet-1k from an ImageFolder, or any CLIP_benchmark dataset (its webdataset format too)."""

    user_data = True
    needs = "benchmark"

    def items(self, inputs: EvalInputs) -> dict:
        return bm.benchmark_tasks(inputs.benchmark, inputs.data_root, limit=inputs.limit)

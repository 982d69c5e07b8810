"""The ``classifier`` task (:mod:`synclip.eval.classifier_head`): the model's trained classification
head on each labelled set, each skipped with its reason when no head knows the set's classes."""

from __future__ import annotations

from synclip.eval import classifier_head as ch
from synclip.eval.task import EvalInputs, EvalTask
from synclip.registry import EVAL_TASKS


@EVAL_TASKS.register("classifier")
class ClassifierHead(EvalTask):
    """``classifier/<set>`` for Fashion-MNIST, MNIST-5k and scikit-learn's digits."""

    def items(self, inputs: EvalInputs) -> dict:
        return ch.head_tasks(inputs.limit)

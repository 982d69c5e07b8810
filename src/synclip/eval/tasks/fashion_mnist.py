"""Tasks on Fashion-MNIST (:mod:`synclip.eval.fashion_mnist`): zero-shot on the test split, and a
linear probe, kNN and end-to-end fine-tuning on training images scored on the same test images."""

from __future__ import annotations

from synclip.eval import fashion_mnist as fm
from synclip.eval.task import EvalInputs, EvalTask
from synclip.registry import EVAL_TASKS


class _FashionMnist(EvalTask):
    def unavailable(self) -> str | None:
        return fm.available()  # names the Debian package


@EVAL_TASKS.register("fashion_mnist")
class FashionMnistZeroShot(_FashionMnist):
    """10-way zero-shot on the test split."""

    def items(self, inputs: EvalInputs) -> dict:
        return {"fashion_mnist": fm.fashion_mnist_task(inputs.limit)}


@EVAL_TASKS.register("linear_probe")
class FashionMnistLinearProbe(_FashionMnist):
    """L-BFGS logistic regression on frozen features of 10,000 training images."""

    def items(self, inputs: EvalInputs) -> dict:
        return {"linear_probe/fashion_mnist": fm.probe_task("lbfgs", inputs.limit)}


@EVAL_TASKS.register("knn")
class FashionMnistKnn(_FashionMnist):
    """k-nearest-neighbour classification on frozen features of 10,000 training images."""

    def items(self, inputs: EvalInputs) -> dict:
        return {"knn/fashion_mnist": fm.probe_task("knn", inputs.limit)}


@EVAL_TASKS.register("finetune")
class FashionMnistFinetune(_FashionMnist):
    """End-to-end fine-tuning of a copy of the image tower on 2,000 training images."""

    def items(self, inputs: EvalInputs) -> dict:
        return {"finetune/fashion_mnist": fm.probe_task("finetune", inputs.limit, n_train=fm.N_FINETUNE)}

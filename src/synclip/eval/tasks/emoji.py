"""Tasks on the emoji corpus (:mod:`synclip.eval.emoji_tasks`): zero-shot per style, text-image
retrieval in the training style and across styles, image-image retrieval across styles."""

from __future__ import annotations

from synclip.eval import emoji_tasks as et
from synclip.eval.task import EvalInputs, EvalTask
from synclip.eval.task_data import Classification
from synclip.registry import EVAL_TASKS


class _PerStyle(EvalTask):
    """A zero-shot task on each style, named ``<prefix>/<style>``."""

    prefix = ""

    def build(self, inputs: EvalInputs, style: str) -> Classification:
        raise NotImplementedError

    def items(self, inputs: EvalInputs) -> dict:
        return {f"{self.prefix}/{style}": self.build(inputs, style) for style in et.STYLES}


@EVAL_TASKS.register("category")
class Category(_PerStyle):
    """Zero-shot over the emoji-test.txt groups (a negative control: the captions never name them)."""

    prefix = "category"

    def build(self, inputs: EvalInputs, style: str) -> Classification:
        return et.label_task(inputs.corpus, style, inputs.rows(style), "category")


@EVAL_TASKS.register("subcategory")
class Subcategory(_PerStyle):
    """Zero-shot over the emoji-test.txt subgroups (a negative control)."""

    prefix = "subcategory"

    def build(self, inputs: EvalInputs, style: str) -> Classification:
        return et.label_task(inputs.corpus, style, inputs.rows(style), "subcategory")


@EVAL_TASKS.register("head_noun")
class HeadNoun(_PerStyle):
    """Zero-shot over frequent nouns the captions use (heart, hand, cat, ...)."""

    prefix = "head_noun"

    def build(self, inputs: EvalInputs, style: str) -> Classification:
        return et.head_noun_task(inputs.corpus, style, inputs.rows(style))


@EVAL_TASKS.register("retrieval")
class TwemojiRetrieval(EvalTask):
    """Unique captions <-> Twemoji images, the training style."""

    def items(self, inputs: EvalInputs) -> dict:
        return {"retrieval/twemoji": et.retrieval_task(inputs.corpus, "twemoji", inputs.rows("twemoji"))}


@EVAL_TASKS.register("cross_style")
class CrossStyleRetrieval(EvalTask):
    """The same captions <-> OpenMoji images: another art style, never trained on."""

    def items(self, inputs: EvalInputs) -> dict:
        return {"retrieval/openmoji": et.retrieval_task(inputs.corpus, "openmoji", inputs.rows("openmoji"))}


@EVAL_TASKS.register("image_retrieval")
class CrossStyleImageRetrieval(EvalTask):
    """Twemoji images rank all OpenMoji images; the drawings of the same caption are the positives."""

    def items(self, inputs: EvalInputs) -> dict:
        task = et.image_retrieval_task(
            inputs.corpus, "twemoji", inputs.rows("twemoji"), "openmoji", inputs.rows("openmoji")
        )
        return {"image_retrieval/twemoji_to_openmoji": task}

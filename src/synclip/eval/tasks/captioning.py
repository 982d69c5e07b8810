"""Tasks of a captioning decoder (:mod:`synclip.eval.caption_tasks`): captioning metrics per emoji style
and CapPa's generative zero-shot on the contrastive zero-shot tasks' class sets; each result is skipped
with its reason when the model has no decoder."""

from __future__ import annotations

from synclip.eval import caption_tasks as ct
from synclip.eval import emoji_tasks as et
from synclip.eval import fashion_mnist as fm
from synclip.eval.task import EvalInputs, EvalTask
from synclip.registry import EVAL_TASKS


@EVAL_TASKS.register("captioning")
class EmojiCaptioning(EvalTask):
    """``captioning/<style>``: greedy captions against each image's name, CIDEr and BLEU."""

    def items(self, inputs: EvalInputs) -> dict:
        out = {}
        for style in et.STYLES:
            rows = inputs.rows(style)
            out[f"captioning/{style}"] = ct.Captioning(
                images=et.style_images(inputs.corpus, rows),
                index=ct.spread(len(rows), ct.N_IMAGES),
                references=[[rows[i]["caption"]] for i in ct.spread(len(rows), ct.N_IMAGES)],
                data={"source": str(inputs.corpus / f"{style}.tsv"), "references": "the emoji's name"},
            )
        return out


@EVAL_TASKS.register("generative_zero_shot")
class GenerativeZeroShot(EvalTask):
    """``generative_zero_shot/<task>``: class names scored by the decoder's log-likelihood."""

    def items(self, inputs: EvalInputs) -> dict:
        out = {}
        for style in et.STYLES:
            out[f"generative_zero_shot/category/{style}"] = ct.GenerativeClassification(
                lambda style=style: et.label_task(inputs.corpus, style, inputs.rows(style), "category")
            )
            out[f"generative_zero_shot/head_noun/{style}"] = ct.GenerativeClassification(
                lambda style=style: et.head_noun_task(inputs.corpus, style, inputs.rows(style))
            )
        out["generative_zero_shot/fashion_mnist"] = ct.GenerativeClassification(
            lambda: fm.fashion_mnist_task(inputs.limit), unavailable=fm.available
        )
        return out

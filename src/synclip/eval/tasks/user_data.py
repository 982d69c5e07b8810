"""Tasks on the user's own data (:mod:`synclip.eval.user_data`): an image folder, a CSV of pairs,
a local Hugging Face dataset."""

from __future__ import annotations

from synclip.eval import user_data as ud
from synclip.eval.task import EvalInputs, EvalTask
from synclip.registry import EVAL_TASKS


@EVAL_TASKS.register("image_folder")
class ImageFolderTasks(EvalTask):
    """``--image-folder``: zero-shot over the class folders, a linear probe and kNN on a seeded split."""

    user_data = True
    needs = "image_folder"

    def items(self, inputs: EvalInputs) -> dict:
        return ud.image_folder_tasks(inputs.image_folder, inputs.class_names, limit=inputs.limit)


@EVAL_TASKS.register("csv")
class CsvRetrieval(EvalTask):
    """``--csv``: retrieval between the file's unique captions and unique images."""

    user_data = True
    needs = "csv"

    def items(self, inputs: EvalInputs) -> dict:
        return ud.csv_task(inputs.csv, *inputs.csv_keys, limit=inputs.limit)


@EVAL_TASKS.register("hf_dataset")
class HFDatasetTasks(EvalTask):
    """``--hf-dataset DIR``: zero-shot, linear probe and kNN over its labels; retrieval over its captions."""

    user_data = True
    needs = "hf_dataset"

    def items(self, inputs: EvalInputs) -> dict:
        return ud.hf_dataset_tasks(inputs.hf_dataset, inputs.hf_options, limit=inputs.limit)

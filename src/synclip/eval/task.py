"""What one ``synclip eval --tasks`` name is: an :class:`EvalTask`, registered in ``EVAL_TASKS``.

A task builds its results' data (:mod:`synclip.eval.task_data`, one item per result name, e.g.
``head_noun/twemoji``) from the :class:`EvalInputs` and runs them on an :class:`Evaluator`: each item
says why it cannot run (``skip_reason``), scores itself (``score``) and draws its picture (``plot``).
Adding a task is one module under :mod:`synclip.eval.tasks` and one import line there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from synclip.eval import emoji_tasks as et
from synclip.eval.task_data import TaskSkipped


class EvalInputs:
    """Where task data comes from: the emoji corpus (built on first use), the user's image folder, CSV
    and Hugging Face dataset (see :mod:`synclip.eval.user_data`), and ``limit`` images per set."""

    def __init__(
        self,
        corpus_dir: str | Path | None = None,
        limit: int | None = None,
        image_folder: str | Path | None = None,
        class_names: str | Path | None = None,
        csv: str | Path | None = None,
        csv_keys: tuple = ("filepath", "title"),
        benchmark: str | None = None,
        data_root: str | Path | None = None,
        hf_dataset: str | Path | None = None,
        hf_options: dict | None = None,
    ):
        self._corpus = Path(corpus_dir) if corpus_dir is not None else None
        self.limit = limit
        self._rows: dict[str, list[dict]] = {}
        self._image_folder, self.class_names, self._csv = image_folder, class_names, csv
        self.csv_keys = csv_keys
        self.benchmark, self.data_root = benchmark, data_root  # synclip.eval.benchmark
        self._hf_dataset, self.hf_options = hf_dataset, dict(hf_options or {})

    @property
    def hf_dataset(self) -> str | Path:
        if self._hf_dataset is None:
            raise ValueError("task 'hf_dataset' needs a local Hugging Face dataset (--hf-dataset DIR)")
        return self._hf_dataset

    @property
    def image_folder(self) -> str | Path:
        if self._image_folder is None:
            raise ValueError("task 'image_folder' needs an image folder (--image-folder DIR)")
        return self._image_folder

    @property
    def csv(self) -> str | Path:
        if self._csv is None:
            raise ValueError("task 'csv' needs a CSV of image-text pairs (--csv FILE)")
        return self._csv

    @property
    def built(self) -> Path | None:
        """The corpus folder if a task has used it (or it was given), else None."""
        return self._corpus

    @property
    def corpus(self) -> Path:
        if self._corpus is None:
            from synclip.data.emoji import build_emoji_corpus

            self._corpus = Path(build_emoji_corpus())
        return self._corpus

    def rows(self, style: str) -> list[dict]:
        if style not in self._rows:
            self._rows[style] = et.read_rows(self.corpus, style, self.limit)
        return self._rows[style]


@dataclass
class TaskResults:
    """What one task adds to ``eval.json``: entries, skipped result names and plot paths, by result name."""

    tasks: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    plots: dict[str, list[str]] = field(default_factory=dict)


class EvalTask:
    """One task name of ``synclip eval --tasks``; subclasses implement :meth:`items`.

    Register a subclass with ``@EVAL_TASKS.register("name")`` (:data:`synclip.registry.EVAL_TASKS`)
    in a module that :mod:`synclip.eval.tasks` imports. ``user_data`` tasks read data the user named
    (``--image-folder``, ``--csv``): missing data is then a mistake to report, not a skip.
    """

    user_data: bool = False
    needs: str | None = None  # the input the task cannot run without: "image_folder", "csv", ...

    def unavailable(self) -> str | None:
        """None when the task's data is installed, else why not; checked, without reading any data,
        to leave a default task out with this reason (a task named explicitly still tries, and is
        skipped with the error its data raises)."""
        return None

    def items(self, inputs: EvalInputs) -> dict:
        """``{result name: task data}`` (:mod:`synclip.eval.task_data` items); raises FileNotFoundError
        or ModuleNotFoundError when the data is not there."""
        raise NotImplementedError

    def run(self, evaluator, inputs: EvalInputs, plots_dir: str | Path | None = None) -> TaskResults:
        """Build the items and score each on ``evaluator`` (:class:`synclip.eval.evaluator.Evaluator`);
        an item that cannot run is skipped with its reason. Raises :class:`TaskSkipped` when the data
        cannot be found or built, so ``evaluate`` skips the whole task under its name."""
        try:
            items = self.items(inputs)
        except (FileNotFoundError, ModuleNotFoundError) as err:
            if self.user_data:
                raise
            raise TaskSkipped(str(err)) from err
        out = TaskResults()
        for key, item in items.items():
            reason = item.skip_reason()
            if reason is not None:
                out.skipped[key] = reason
                continue
            try:
                out.tasks[key] = item.score(evaluator)
            except TaskSkipped as err:  # the model cannot do this item (e.g. no classification head)
                out.skipped[key] = str(err)
                continue
            if plots_dir is not None:
                paths = item.plot(evaluator, key, plots_dir)
                if paths is not None:
                    out.plots[key] = [str(p) for p in paths]
        return out

"""Every ``synclip eval --tasks`` name: each module registers its tasks in ``EVAL_TASKS`` on import.

A new task is a module here with an :class:`~synclip.eval.task.EvalTask` subclass decorated with
``@EVAL_TASKS.register("name")``, and one import line below.
"""

from synclip.eval.tasks import (  # noqa: F401
    benchmark,
    captioning,
    classifier,
    digits,
    emoji,
    fashion_mnist,
    user_data,
)

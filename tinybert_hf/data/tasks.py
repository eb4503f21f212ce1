"""The two tasks tinybert-hf trains students for, and everything that differs between them, in one place.

Code that depends on the task reads it from [`Task`] (the head's class-name suffix, the label column, whether labels
are per token) instead of comparing task strings or class names: a model class for a task is the Auto, TinyBERT or
ONNX class whose name ends in `task.head`.

Example:

```python
>>> from tinybert_hf.data.tasks import TASKS, task_of_model_class

>>> TASKS["token-classification"].label_column, task_of_model_class("BertForSequenceClassification").name
('ner_tags', 'text-classification')

```
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT_TASK, TOKEN_TASK = "text-classification", "token-classification"


@dataclass(frozen=True)
class Task:
    name: str  # the pipeline tag, and the value of `--task`
    head: (
        str  # class-name suffix of the models with this task's head: AutoModel<head>, TinyBert<head>, OnnxModel<head>
    )
    label_column: str  # the column of label ids once loaded ("label", or "ner_tags": one list per row)
    token_level: bool  # a label per token (the first piece of each word; -100 elsewhere) rather than per row


TASKS = {
    TEXT_TASK: Task(TEXT_TASK, head="ForSequenceClassification", label_column="label", token_level=False),
    TOKEN_TASK: Task(TOKEN_TASK, head="ForTokenClassification", label_column="ner_tags", token_level=True),
}


def task_of_model_class(class_name: str) -> Task | None:
    """The task whose head a model class (by name, e.g. `"RobertaForTokenClassification"`) has; `None` for a bare
    encoder or another head."""
    return next((task for task in TASKS.values() if class_name.endswith(task.head)), None)

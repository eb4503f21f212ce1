"""`tinybert-hf push`: a saved student, its code, tokenizer and card, to the Hub in one commit."""

from __future__ import annotations

from ..hub.push import push_student
from .arguments import PushArguments


def run(arguments: PushArguments) -> None:
    info = push_student(
        arguments.model,
        arguments.repo_id,
        private=arguments.private,
        revision=arguments.revision,
        commit_message=arguments.commit_message,
        create_pr=arguments.create_pr,
    )
    print(f"pushed {arguments.model} to {info.commit_url}")

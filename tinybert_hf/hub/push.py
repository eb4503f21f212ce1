"""Push a saved student to the Hugging Face Hub: weights, config with `auto_map`, modeling code, tokenizer, card.

What goes up is chosen file by file, never "the whole directory": safetensors weights only (no pickles such as
`training_args.bin` or `pytorch_model.bin`), `config.json` (a TinyBERT config gets the full `auto_map` and the two
code files, so `trust_remote_code=True` loads it where `tinybert_hf` is not installed), the tokenizer files, the
model card and the run's record. The local directory is only read: a failed upload leaves it as it was.

The card is rendered for the target repository from the run's record (`tinybert_results.json`) when the directory
has one, so the loading examples name the repository the model is pushed to; otherwise the directory's own
`README.md` is pushed as it is, and a directory with neither is refused (a pushed model always has a card).

Authentication is `huggingface_hub`'s: the `token` argument, else `HF_TOKEN`, else `hf auth login`'s saved token.
The token travels only in the Authorization header of requests to the Hub endpoint; errors raised here are scrubbed
of it.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.utils import get_token
from transformers.utils import logging

from ..errors import PushError
from ..utils.safe_loading import SAFETENSORS_INDEX, safetensors_files
from .model_card import RESULTS_NAME, card_was_edited, render_model_card

logger = logging.get_logger(__name__)

# every tokenizer file `save_pretrained` of a WordPiece tokenizer may write
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def student_files(student_dir: str | Path, repo_id: str) -> list[CommitOperationAdd]:
    r"""
    The files a push of `student_dir` uploads, as commit operations (nothing is written to the directory).

    Args:
        student_dir (`str` or `Path`): a directory written by `save_pretrained` (and, for the card, the recipe).
        repo_id (`str`): the target repository (named in the card's loading examples).

    Returns:
        `list[CommitOperationAdd]`: weights, config, code, tokenizer, card and record.

    Raises:
        `FileNotFoundError`: no directory, no `config.json`, no safetensors weights, no tokenizer, or no card.
        [`~tinybert_hf.errors.CorruptWeightsError`]: a safetensors index names shards that are not there.
    """
    directory = Path(student_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"No student directory at {directory}.")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json: save the student with `save_pretrained` first.")
    operations = [CommitOperationAdd(name, directory / name) for name in _weight_files(directory)]

    config = json.loads(config_path.read_text())
    config_file: Path | bytes = config_path
    if config.get("model_type") == "tinybert":
        from ..models.tinybert import modeling_tinybert
        from ..models.tinybert.modeling_tinybert import TINYBERT_AUTO_MAP, TINYBERT_CODE_FILES

        # Students saved by this package carry both; older or hand-made directories get them here.
        auto_map = config.get("auto_map") or {}
        if any(auto_map.get(key) != value for key, value in TINYBERT_AUTO_MAP.items()):
            config["auto_map"] = {**auto_map, **TINYBERT_AUTO_MAP}
            config_file = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        code = Path(modeling_tinybert.__file__).resolve().parent
        for name in TINYBERT_CODE_FILES:
            source = directory / name if (directory / name).is_file() else code / name
            operations.append(CommitOperationAdd(name, source))
    operations.append(CommitOperationAdd("config.json", config_file))

    tokenizer = [name for name in TOKENIZER_FILES if (directory / name).is_file()]
    if not {"tokenizer.json", "vocab.txt"} & set(tokenizer):
        raise FileNotFoundError(
            f"{directory} has no tokenizer (tokenizer.json or vocab.txt): save it with "
            "`tokenizer.save_pretrained(<student>)` so the pushed model can be used as it is."
        )
    operations += [CommitOperationAdd(name, directory / name) for name in tokenizer]

    operations.append(_card(directory, repo_id))
    if (directory / RESULTS_NAME).is_file():
        operations.append(CommitOperationAdd(RESULTS_NAME, directory / RESULTS_NAME))
    return operations


def _card(directory: Path, repo_id: str) -> CommitOperationAdd:
    """The card for `repo_id`: rendered from the run's record unless the user edited the rendered card, whose
    edits win (with a warning that its loading examples may name another repository)."""
    record, readme = directory / RESULTS_NAME, directory / "README.md"
    if record.is_file():
        if card_was_edited(directory):
            logger.warning(f"{readme} differs from the card its run renders: pushing it as edited, unchanged.")
            return CommitOperationAdd("README.md", readme)
        results = json.loads(record.read_text())
        return CommitOperationAdd("README.md", str(render_model_card(results, repo_id=repo_id)).encode())
    if readme.is_file():
        return CommitOperationAdd("README.md", readme)
    raise FileNotFoundError(
        f"{directory} has no model card (README.md) and no {RESULTS_NAME} to render one from: a pushed model "
        "needs a card. Students made by `tinybert-hf distill` have both; otherwise write README.md yourself."
    )


def _weight_files(directory: Path) -> list[str]:
    if (directory / SAFETENSORS_INDEX).is_file():  # the index and the shards it names (all present, or an error)
        return [SAFETENSORS_INDEX, *(path.name for path in safetensors_files(directory))]
    if (directory / "model.safetensors").is_file():
        return ["model.safetensors"]
    pickles = [name for name in PICKLE_WEIGHTS if (directory / name).is_file()]
    hint = " (only pickle weights found: re-save with `save_pretrained`, which writes safetensors)" if pickles else ""
    raise FileNotFoundError(f"{directory} has no safetensors weights{hint}; only safetensors are pushed.")


def push_student(
    student_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    endpoint: str | None = None,
    delete_from_repo: tuple[str, ...] = (),
) -> CommitInfo:
    r"""
    Create `repo_id` if needed and commit the student's weights, config, code, tokenizer and card to it.

    Args:
        student_dir (`str` or `Path`): the saved student (only read).
        repo_id (`str`): `"<user or org>/<name>"`.
        token (`str`, *optional*): Hub token; defaults to `HF_TOKEN` or the saved login.
        private (`bool`, *optional*, defaults to `False`): create the repository as private.
        revision (`str`, *optional*): branch to commit to.
        commit_message (`str`, *optional*): defaults to "Upload TinyBERT student".
        create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead of committing.
        endpoint (`str`, *optional*): the Hub to talk to; defaults to `HF_ENDPOINT` or huggingface.co.
        delete_from_repo (`tuple[str, ...]`, *optional*): files known to be in the repository that the same commit
            removes (the recipe removes the `training_args.bin` pickle Trainer's checkpoint pushes uploaded).

    Returns:
        [`~huggingface_hub.CommitInfo`]: the commit (its `commit_url`, `oid`, `repo_url`).

    Raises:
        `FileNotFoundError`: the directory misses something a pushed model needs (nothing is sent).
        [`PushError`]: the Hub refused or could not be reached; the message gives the reason (never the token).
    """
    operations = student_files(student_dir, repo_id)  # every local check before the first request
    try:
        created = create_repository(repo_id, private=private, token=token, endpoint=endpoint)
    except PushError as error:
        raise PushError(f"Could not push {student_dir}: the local student is unchanged. {error}") from None
    if created != repo_id:  # a bare name: the Hub put it in the token owner's namespace; the card names that
        repo_id, operations = created, student_files(student_dir, created)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        info = api.create_commit(
            repo_id,
            [*operations, *(CommitOperationDelete(path) for path in delete_from_repo)],
            commit_message=commit_message or "Upload TinyBERT student",
            revision=revision,
            create_pr=create_pr,
        )
    except Exception as error:  # HTTP errors, refused connections, timeouts: one clear error for all of them
        raise PushError(
            f"Could not push {student_dir} to {repo_id} on {api.endpoint}: the local student is unchanged; nothing "
            f"was committed unless the Hub reports otherwise. Reason: {_reason(error, api.endpoint, token)}"
        ) from None
    logger.info(f"Pushed {student_dir} to {info.commit_url}")
    return info


def create_repository(
    repo_id: str, *, private: bool = False, token: str | None = None, endpoint: str | None = None
) -> str:
    r"""
    Create `repo_id` on the Hub unless it exists, and return its full id (a bare name gets the token owner's
    namespace). Checks the token and the name before anything long runs.

    Raises:
        [`PushError`]: the Hub refused or could not be reached (the message never holds the token).
    """
    api = HfApi(endpoint=endpoint, token=token)
    try:
        return api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    except Exception as error:
        raise PushError(
            f"Could not create the Hub repository {repo_id!r} on {api.endpoint}. Reason: "
            f"{_reason(error, api.endpoint, token)}"
        ) from None


def _reason(error: Exception, endpoint: str, token: str | None) -> str:
    """The error's type and message with any token replaced, plus what to check for the usual causes."""
    reason = f"{type(error).__name__}: {error}"
    for secret in {token, get_token()} - {None, ""}:
        reason = reason.replace(secret, "<token>")
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        reason += "\nThe Hub refused the token: use a token with write access (`HF_TOKEN` or `hf auth login`)."
    elif status is None and "connect" in type(error).__name__.lower():
        reason += f"\n{endpoint} could not be reached; check the network or `HF_ENDPOINT`."
    return reason


__all__ = ["PushError", "create_repository", "push_student", "student_files"]

"""A griffe extension for the Hugging Face docstring conventions mkdocstrings does not know.

1. Dataclass fields documented by `field(metadata={"help": ...})` (TrainingArguments' convention, which
   `HfArgumentParser` turns into `--help`) become the `Args:` section of their class, as doc-builder would show
   them, so the API reference lists every option with its type, default and what it does.
2. Entries that document several parameters at once (`train_file, validation_file, test_file (`str`, *optional*):`)
   become one entry per parameter, which the Google-style parser can read.
3. doc-builder references become mkdocs cross-references.

The docstrings are written for transformers' doc-builder: [`~tinybert_hf.errors.BadInputError`] links to the object
and shows its last name, [`DistillationTrainer`] shows the name as written, and either may be relative to the
module or name an object of the package that the module does not import (as doc-builder resolves them). Python-Markdown
would leave them as literal brackets, so each becomes an *optional* autoref: a link when the object is rendered
somewhere in the API reference, plain code when it is not (an object outside this package, such as [`Trainer`], or a
module without an API page), never a warning that fails `mkdocs build --strict`.
"""

from __future__ import annotations

import ast
import re
from html import escape

import griffe

PACKAGE = "tinybert_hf"
# [`name`] or [`~dotted.name`], but not the text of a Markdown link ([`name`](url), [`name`][id])
HF_REFERENCE = re.compile(r"\[`(?P<tilde>~?)(?P<name>[A-Za-z_][\w.]*)`\](?![(\[])")


def resolve(obj: griffe.Object, name: str, paths_by_name: dict[str, list[str]]) -> str | None:
    """The full path `name` refers to from `obj`'s scope, or `None` when it is not an object of this package."""
    if name == PACKAGE or name.startswith(f"{PACKAGE}."):
        return name
    first, _, rest = name.partition(".")
    try:
        path = obj.resolve(first)
    except griffe.NameResolutionError:
        # not imported where it is named: the one object of the package with that name (`importance` inside
        # pruning/structured.py, `TinyBertPreTrainedModel` in the configuration's docstring), if there is one
        candidates = paths_by_name.get(first, [])
        if len(candidates) != 1:
            return None
        path = candidates[0]
    path = f"{path}.{rest}" if rest else path
    return path if path.startswith(f"{PACKAGE}.") else None


def rewrite(obj: griffe.Object, text: str, paths_by_name: dict[str, list[str]]) -> str:
    def replace(match: re.Match) -> str:
        name = match["name"]
        shown = f"<code>{escape(name.rsplit('.', 1)[-1] if match['tilde'] else name)}</code>"
        path = resolve(obj, name, paths_by_name)
        return shown if path is None else f'<autoref identifier="{escape(path)}" optional>{shown}</autoref>'

    return HF_REFERENCE.sub(replace, text)


def field_help(attribute: griffe.Attribute) -> str | None:
    """The help of an attribute assigned `field(..., metadata={"help": ...})`, else `None`."""
    if attribute.value is None:
        return None
    try:
        call = ast.parse(str(attribute.value), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "field"):
        return None
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    metadata = keywords.get("metadata")
    if not isinstance(metadata, ast.Dict):
        return None
    helps = [
        value.value
        for key, value in zip(metadata.keys, metadata.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "help" and isinstance(value, ast.Constant)
    ]
    return helps[0] if helps and isinstance(helps[0], str) else None


def fields_as_args(cls: griffe.Class) -> str | None:
    """An HF `Args:` section for the class's documented dataclass fields, or `None` when it has none."""
    entries = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or (found := field_help(member)) is None:
            continue
        # the type and the default come from the dataclass's signature, as for any documented parameter;
        # the help is plain text for --help: `<model>-int8` would be an HTML tag to Markdown, `*_loss_weight` emphasis
        text = escape(found, quote=False).replace("*", "\\*")
        entries.append(f"    {member.name}:\n        {text}")
    return "Args:\n" + "\n".join(entries) if entries else None


def with_args(docstring: str, args: str) -> str:
    """`docstring` with `args` before its example (doc-builder's order), or at its end."""
    lines = docstring.splitlines()
    at = next((index for index, line in enumerate(lines) if line.strip() in ("Example:", "Examples:")), len(lines))
    return "\n".join([*lines[:at], "", args, "", *lines[at:]]).strip("\n")


SECTION = re.compile(r"^(Args|Arguments|Parameters|Attributes|Other Parameters):$")
NAME_AND_TYPE = re.compile(r"(?P<name>\w+)(?: \((?P<type>.*)\))?")


def split_top_level(text: str, separator: str) -> list[str]:
    """`text` split at every `separator` outside parentheses."""
    parts, depth, current = [], 0, ""
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += character
    return [*parts, current]


def grouped_entry(header: str) -> list[str] | None:
    """The one-parameter headers of an entry header that names several ("a, b (`str`): ..." or
    "a (`int`), b (`bool`): ..."), or `None` for a header of one parameter (or no parameter header at all)."""
    names, *rest = split_top_level(header, ":")
    parts = [NAME_AND_TYPE.fullmatch(part.strip()) for part in split_top_level(names, ",")]
    if not rest or len(parts) < 2 or not all(parts):
        return None
    # "a, b (`str`)": the one type given is every name's
    shared = None if any(part["type"] for part in parts[:-1]) else parts[-1]["type"]
    entries = []
    for part in parts:
        kind = part["type"] or shared
        entries.append(f"{part['name']}{f' ({kind})' if kind else ''}:{':'.join(rest)}")
    return entries


def indentation(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_grouped_entries(text: str) -> str:
    """`text` with every entry that names several parameters repeated once per parameter; the names may run over
    several lines, each but the last ending with a comma."""
    lines, out, index, in_section = text.split("\n"), [], 0, False
    while index < len(lines):
        line, indent = lines[index], indentation(lines[index])
        if line and not indent:
            in_section = bool(SECTION.match(line))
        end = index + 1  # past the header
        while lines[end - 1].rstrip().endswith(",") and end < len(lines) and indentation(lines[end]) == indent:
            end += 1
        entries = grouped_entry(" ".join(part.strip() for part in lines[index:end])) if in_section and indent else None
        if entries is None:
            out.append(line)
            index += 1
            continue
        body_end = end  # past the description: the lines indented deeper (and blank lines between them)
        while body_end < len(lines) and (not lines[body_end].strip() or indentation(lines[body_end]) > indent):
            body_end += 1
        while body_end > end and not lines[body_end - 1].strip():
            body_end -= 1
        for entry in entries:
            out += [" " * indent + entry, *lines[end:body_end]]
        index = body_end
    return "\n".join(out)


def documented(obj: griffe.Object):
    """`obj` and every object defined under it (aliases are documented where they are defined)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from documented(member)


class HFDocstrings(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        if pkg.name != PACKAGE:
            return
        objects = list(documented(pkg))
        paths_by_name: dict[str, list[str]] = {}
        for obj in objects:
            paths_by_name.setdefault(obj.name, []).append(obj.path)
        for obj in objects:
            if obj.is_class and (args := fields_as_args(obj)) is not None:
                if obj.docstring is None:
                    obj.docstring = griffe.Docstring(args, parent=obj)
                elif not re.search(r"^Args:$", obj.docstring.value, flags=re.M):
                    obj.docstring.value = with_args(obj.docstring.value, args)
            if obj.docstring is not None:
                value = split_grouped_entries(obj.docstring.value)
                obj.docstring.value = rewrite(obj, value, paths_by_name)

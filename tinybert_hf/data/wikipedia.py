"""Wikipedia articles as plain prose, read from a MediaWiki XML export (`pages-articles.xml[.bz2]`) as a stream.

The export holds each page's wikitext: templates, references, tables, file links and headings around the prose.
`mwparserfromhell` parses the markup; what a reader would not see as running text is dropped, so snippets cut from
an article read like the sentences a classifier meets, not like markup. Redirects and pages outside the article
namespace (talk, templates, categories) are skipped.

```python
>>> from tinybert_hf.data.wikipedia import article_prose

>>> article_prose("'''Paris''' is the [[capital city|capital]] and largest city of [[France]].<ref>x</ref>\\n"
...               "== History ==\\n[[File:Paris.jpg|thumb|The city]]\\n"
...               "Its history spans two thousand years and more.")
'Paris is the capital and largest city of France.\\nIts history spans two thousand years and more.'

```
"""

from __future__ import annotations

import bz2
import gzip
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import mwparserfromhell
from mwparserfromhell.nodes import Heading, Node, Tag, Template, Text, Wikilink

from ..errors import BadInputError

ARTICLE_NAMESPACE = "0"
# Tags whose content is not running text: citations, tables, galleries, formulas, code.
_HIDDEN_TAGS = {"ref", "references", "table", "gallery", "math", "timeline", "imagemap", "score", "pre", "code"}
_HIDDEN_TAGS |= {"syntaxhighlight", "source", "chem"}
# Links that show a file or an image, or put the page in a category: not part of the sentence they sit in.
_MEDIA_NAMESPACES = {"file", "image", "category", "media"}
_LANGUAGE_LINK = re.compile(r"^:?[a-z]{2,3}(-[a-z]+)*:")  # [[de:Paris]]: the article in another language
# Sections after which an article holds no more prose: citations, book lists, links.
_END_SECTIONS = {"references", "notes", "footnotes", "citations", "sources", "bibliography", "further reading"}
_END_SECTIONS |= {"external links", "see also", "works cited", "notes and references", "literature"}
# Templates that stand for text in a sentence: dashes, and a measure (`{{convert|777|km}}` reads "777 km").
_DASHES = {"ndash": "–", "snd": " – ", "mdash": "—", "spaced ndash": " – ", "nbsp": " "}
_MEASURES = {"convert", "cvt"}
# Citations anywhere (even inside bold or italics, where the parser nests them): `<ref .../>`, `<ref>...</ref>`.
_REFERENCE = re.compile(r"<ref\b[^>]*?/>|<ref\b[^>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)
_LIST_LINE = re.compile(r"^[*#;:].*$\n?", re.MULTILINE)  # list items and indented lines: not sentences
# Markup the parser could not close (a broken template, table or tag in the dump), left in a line as text.
_MARKUP_LEFT = re.compile(r"\{\{|\}\}|\[\[|\]\]|\||</?[a-z]+\b[^<>]*>")
_EMPTY_BRACKETS = re.compile(r"\(\s*[,;:\s]*\)")  # "Albania (, ; )": what pronunciation templates leave
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?)])")


def _spoken(node: Node) -> str | None:
    """The text a reader sees for a template that stands for words in a sentence (a dash, a measure), else
    `None`."""
    name = str(node.name).strip().lower()
    if name in _DASHES:
        return _DASHES[name]
    if name in _MEASURES and len(node.params) >= 2:
        return f"{node.params[0].value.strip_code().strip()} {node.params[1].value.strip_code().strip()}"
    return None


def _hidden(node: Node) -> bool:
    """Whether `node` (a node of an article, at any level of formatting) is markup a reader does not see as
    running text."""
    if isinstance(node, Heading):  # a heading glued to the next paragraph would read as one odd sentence
        return True
    if isinstance(node, Tag):
        return str(node.tag).strip().lower() in _HIDDEN_TAGS
    if isinstance(node, Wikilink):
        title = str(node.title).strip()
        return title.split(":", 1)[0].strip().lower() in _MEDIA_NAMESPACES or bool(_LANGUAGE_LINK.match(title))
    return False


def _running_nodes(nodes: list[Node]) -> Iterator[Node]:
    """The nodes of one level a reader sees as running text, up to the first section of citations or links (its
    headings, book lists and links are not prose)."""
    for node in nodes:
        if isinstance(node, Heading) and node.title.strip_code().strip().lower() in _END_SECTIONS:
            return
        if isinstance(node, Template):
            spoken = _spoken(node)
            if spoken is not None:
                yield Text(spoken)
            continue  # strip_code drops the other templates (infoboxes, citations, pronunciations)
        if not _hidden(node):
            yield node


def _keep_running_text(code: mwparserfromhell.wikicode.Wikicode) -> None:
    """Drop from `code`, in place, what is not running text, at every level of formatting: an italic span the
    page never closes holds the rest of the article, file links and tables included. Whatever is nested inside a
    template or a link goes with it (strip_code keeps a link's shown text only)."""
    code.nodes = list(_running_nodes(code.nodes))
    for node in code.nodes:
        if isinstance(node, Tag) and node.contents is not None:
            _keep_running_text(node.contents)


def article_prose(wikitext: str, min_words: int = 8) -> str:
    r"""
    The running text of one article's wikitext: links become their shown text, dashes and measures their words;
    other templates, references, tables, headings, list lines, file and language links and the sections from
    "References" or "See also" on are dropped, and so is every line of fewer than `min_words` words (captions) or
    with markup the parser could not close (a broken template in the dump).

    Args:
        wikitext (`str`): a page's source, as in the `<text>` element of an export.
        min_words (`int`, *optional*, defaults to 8): the least words of a line kept.

    Returns:
        `str`: the paragraphs, one per line (empty when the page holds no prose).
    """
    parsed = mwparserfromhell.parse(_LIST_LINE.sub("", _REFERENCE.sub("", wikitext)))
    _keep_running_text(parsed)
    lines = []
    for line in parsed.strip_code(normalize=True, collapse=True).splitlines():
        line = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _EMPTY_BRACKETS.sub("", line))
        line = " ".join(line.split())  # one space where a dropped template or link left two
        if len(line.split()) >= min_words and not _MARKUP_LEFT.search(line):
            lines.append(line)
    return "\n".join(lines)


def _page_text(page: ElementTree.Element) -> str:
    """The wikitext of an article page's newest revision (a history export holds every revision, oldest first);
    empty for a redirect or a page outside the article namespace (an old export without `<ns>` names none)."""
    revisions = page.findall("{*}revision")
    text = (revisions[-1].findtext("{*}text") or "") if revisions else ""
    namespace = page.findtext("{*}ns", default=ARTICLE_NAMESPACE)
    redirect = page.find("{*}redirect") is not None or text.lstrip()[:9].upper() == "#REDIRECT"
    return "" if redirect or namespace != ARTICLE_NAMESPACE else text


def wikipedia_articles(path: str | Path) -> Iterator[str]:
    r"""
    The prose of each article of a MediaWiki XML export (`.xml`, or `.xml.bz2` / `.xml.gz` read as it is), in file
    order, read page by page (a full dump never sits in memory). Redirects, pages outside the article namespace and
    pages without prose are skipped; of a history export, each article's newest revision is read.

    Args:
        path (`str` or `os.PathLike`): the export file.

    Yields:
        `str`: an article's paragraphs, one per line (see [`article_prose`]).

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: the file is not a complete MediaWiki XML export (cut short, not XML,
            or not compressed as its name says).
    """
    suffix = str(path).lower()
    opener = bz2.open if suffix.endswith(".bz2") else gzip.open if suffix.endswith(".gz") else open
    try:
        with opener(path, "rb") as export:
            for _, element in ElementTree.iterparse(export, events=("end",)):
                if element.tag.rsplit("}", 1)[-1] != "page":  # tags carry the export schema's namespace
                    continue
                text = _page_text(element)
                element.clear()  # the page is read: free it before the next one
                prose = article_prose(text) if text else ""
                if prose:
                    yield prose
    except (ElementTree.ParseError, EOFError, OSError) as error:  # OSError: bz2/gzip's "not compressed data"
        if isinstance(error, FileNotFoundError):
            raise
        raise BadInputError(
            f"{path} is not a complete MediaWiki XML export ({error}): give a `pages-articles.xml` dump, as it "
            "is or compressed as its name says (.xml.bz2, .xml.gz)."
        ) from error

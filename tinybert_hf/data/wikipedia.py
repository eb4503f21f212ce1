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
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import mwparserfromhell
from mwparserfromhell.nodes import Heading, Node, Tag, Wikilink

ARTICLE_NAMESPACE = "0"
# Tags whose content is not running text: citations, tables, galleries, formulas, code.
_HIDDEN_TAGS = {"ref", "references", "table", "gallery", "math", "timeline", "imagemap", "score", "pre", "code"}
_HIDDEN_TAGS |= {"syntaxhighlight", "source", "chem"}
# Links that show a file or an image, or put the page in a category: not part of the sentence they sit in.
_MEDIA_NAMESPACES = {"file", "image", "category", "media"}
# Markup the parser could not close (a broken template or table in the dump) shows up as these characters.
_MARKUP_LEFT = re.compile(r"[|{}<>\[\]]")


def _hidden(node: Node) -> bool:
    """Whether `node` (a top-level node of an article) is markup a reader does not see as running text."""
    if isinstance(node, Heading):  # a heading glued to the next paragraph would read as one odd sentence
        return True
    if isinstance(node, Tag):
        return str(node.tag).strip().lower() in _HIDDEN_TAGS
    if isinstance(node, Wikilink):
        return str(node.title).split(":", 1)[0].strip().lower() in _MEDIA_NAMESPACES
    return False


def article_prose(wikitext: str, min_words: int = 8) -> str:
    r"""
    The running text of one article's wikitext: links become their shown text, templates, references, tables,
    headings and file links are dropped, and so is every line of fewer than `min_words` words (list entries,
    captions) or with markup the parser could not close.

    Args:
        wikitext (`str`): a page's source, as in the `<text>` element of an export.
        min_words (`int`, *optional*, defaults to 8): the least words of a line kept.

    Returns:
        `str`: the paragraphs, one per line (empty when the page holds no prose).
    """
    parsed = mwparserfromhell.parse(wikitext)
    # Top-level nodes only: text and links sit at the top level, the nodes dropped here (references, tables, file
    # links) too; whatever is nested inside a template goes with the template.
    parsed.nodes = [node for node in parsed.nodes if not _hidden(node)]
    lines = parsed.strip_code(normalize=True, collapse=True).splitlines()
    # " ".join(split()): one space where a dropped template (a converted unit, a citation) left two
    return "\n".join(
        " ".join(line.split()) for line in lines if len(line.split()) >= min_words and not _MARKUP_LEFT.search(line)
    )


def wikipedia_articles(path: str | Path) -> Iterator[str]:
    r"""
    The prose of each article of a MediaWiki XML export (`.xml`, or `.xml.bz2` read as it is), in file order, read
    page by page (a full dump never sits in memory). Redirects, pages outside the article namespace and pages
    without prose are skipped.

    Args:
        path (`str` or `os.PathLike`): the export file.

    Yields:
        `str`: an article's paragraphs, one per line (see [`article_prose`]).
    """
    opener = bz2.open if str(path).endswith(".bz2") else open
    with opener(path, "rb") as export:
        for _, element in ElementTree.iterparse(export, events=("end",)):
            if element.tag.rsplit("}", 1)[-1] != "page":  # tags carry the export schema's namespace
                continue
            is_article = element.findtext("{*}ns") == ARTICLE_NAMESPACE and element.find("{*}redirect") is None
            prose = article_prose(element.findtext("{*}revision/{*}text") or "") if is_article else ""
            element.clear()  # the page is read: free it before the next one
            if prose:
                yield prose

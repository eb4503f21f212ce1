"""Wikipedia articles as transfer text: markup to prose, MediaWiki exports read page by page, the packaged pages."""

import bz2
import gzip
import os
import re

import pytest

from tinybert_hf.data.packaged import packaged_wikipedia_path
from tinybert_hf.data.transfer_text import load_transfer_text
from tinybert_hf.data.wikipedia import article_prose, wikipedia_articles
from tinybert_hf.errors import BadInputError

ARTICLE = """{{Infobox river|name=Seine|length=777 km}}
The '''Seine''' ({{IPA-fr|sɛn}}) is a {{convert|777|km}} long river and an important [[commercial]] \
[[Waterway|water way]] in France.<ref name="a">{{cite web|url=http://x|title=Seine}}</ref>
[[File:Seine Paris.jpg|thumb|The river in [[Paris]], seen from a bridge over it]]
== Course ==
It rises at Source-Seine, northwest of Dijon, and flows through [[Paris]] into the English Channel.
{| class="wikitable"
|-
| Paris || 2,100,000 people live on the banks of the river here
|}
* A list entry long enough to be a line of its own
Its name comes from the Latin ''Sequana'', the Gallo-Roman goddess of the river [itself].<ref>Smith, 2001</ref>
A count of x < 5 bridges {{ndash}} that is, ''few of them<ref>Paludan, p. 116.</ref> for a river'' {{ndash}} is wrong.
[[Category:Rivers of France]]
[[de:Seine]]
== References ==
Smith, John. The River Seine and its history over two thousand years. London: Pluto Press, 2001.
"""


def test_article_prose_keeps_running_text_and_drops_markup():
    assert article_prose(ARTICLE).splitlines() == [
        "The Seine is a 777 km long river and an important commercial water way in France.",
        "It rises at Source-Seine, northwest of Dijon, and flows through Paris into the English Channel.",
        "Its name comes from the Latin Sequana, the Gallo-Roman goddess of the river [itself].",
        "A count of x < 5 bridges \u2013 that is, few of them for a river \u2013 is wrong.",
    ]
    assert article_prose(ARTICLE, min_words=100) == ""
    # a template the parser cannot close leaves its markup in the line: the line goes, the rest stays
    broken = "{{cite web |url=http://x |title=A title not closed\nA line of eight plain words right here."
    assert article_prose(broken) == "A line of eight plain words right here."


def _page(title, text, namespace="0", redirect=None):
    redirect_element = f'<redirect title="{redirect}" />' if redirect else ""
    return (
        f"<page><title>{title}</title><ns>{namespace}</ns><id>1</id>{redirect_element}"
        f'<revision><id>2</id><text xml:space="preserve">{text}</text></revision></page>'
    )


def _export(*pages):
    return (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">'
        "<siteinfo><sitename>Wikipedia</sitename></siteinfo>" + "".join(pages) + "</mediawiki>"
    )


@pytest.mark.parametrize("suffix", [".xml", ".xml.bz2"])
def test_wikipedia_articles_reads_articles_of_an_export_in_order(tmp_path, suffix):
    export = _export(
        _page("Seine", ARTICLE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")),
        _page("River Seine", "#REDIRECT [[Seine]]", redirect="Seine"),
        _page("Talk:Seine", "This talk page has words enough to be a line of prose.", namespace="1"),
        _page("Stub", "Too short."),
        _page("Loire", "The Loire is the longest river in France, at about a thousand km."),
        _page("Rhine", "#REDIRECT [[Rhine river]] and some more words to make a line of prose"),
    )
    path = tmp_path / f"pages-articles{suffix}"
    path.write_bytes(bz2.compress(export.encode()) if suffix.endswith(".bz2") else export.encode())
    articles = list(wikipedia_articles(path))
    loire = "The Loire is the longest river in France, at about a thousand km."
    assert articles == [article_prose(ARTICLE), loire]
    # as a user's transfer source: one document per article, snippets of whole sentences
    rows = load_transfer_text([str(tmp_path / f"*{suffix}")], rows=100, max_words=20)["text"]
    assert sorted(" ".join(rows).split()) == sorted(" ".join(articles).split())  # every word once
    assert all(len(row.split()) <= 20 for row in rows)
    with pytest.raises(FileNotFoundError, match="No MediaWiki export matches"):
        load_transfer_text([str(tmp_path / "missing.xml.bz2")], rows=4)


def test_wikipedia_articles_reads_gzip_history_and_old_exports(tmp_path):
    newest = "The Loire is the longest river of France, at about a thousand km, in its newest revision."
    history = _page("Loire", "The Loire is a river, in an old revision of the page, long since edited.").replace(
        "</revision>", f'</revision><revision><id>3</id><text xml:space="preserve">{newest}</text></revision>'
    )
    path = tmp_path / "history.xml.gz"
    path.write_bytes(gzip.compress(_export(history).encode()))
    assert list(wikipedia_articles(path)) == [newest]
    old = _export(_page("Loire", newest)).replace("<ns>0</ns>", "")  # exports before 0.4 have no <ns>
    (tmp_path / "old.xml").write_text(old, encoding="utf-8")
    assert list(wikipedia_articles(tmp_path / "old.xml")) == [newest]


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.xml", b""),
        ("cut.xml", _export(_page("Loire", "The Loire is the longest river in France.")).encode()[:-30]),
        ("cut.xml.bz2", bz2.compress(_export(_page("Loire", "x")).encode())[:-10]),
        ("plain.xml.bz2", _export(_page("Loire", "x")).encode()),  # not compressed as its name says
        ("notes.xml", b"just some notes, not XML"),
    ],
)
def test_a_broken_export_is_refused_naming_the_file(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadInputError, match=rf"{name} is not a complete MediaWiki XML export"):
        load_transfer_text([tmp_path / name], rows=4)  # a `Path` too


def test_named_sources_ignore_case_and_rows_must_be_positive():
    with pytest.raises(BadInputError, match="joins the task's training texts.*training_texts"):
        load_transfer_text(["Joined"], rows=4)  # the named source, not a Hub id
    with pytest.raises(BadInputError, match="1 or more, got 0"):
        load_transfer_text(["joined"], rows=0, training_texts=["Fine."])


def test_packaged_wikipedia_streams_prose_of_every_article():
    try:  # CI installs gensim (the packaged Wikipedia pages) with --no-deps: there, missing is a failure
        path = packaged_wikipedia_path()
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))
    articles = list(wikipedia_articles(path))
    assert len(articles) == 103  # 206 pages: 100 redirects, 2 disambiguation pages and a list (no prose)
    assert 380_000 < sum(len(article.split()) for article in articles) < 410_000
    rows = load_transfer_text(["wikipedia"], rows=500)["text"]
    assert len(set(rows)) == 500 and all(0 < len(row.split()) <= 150 for row in rows)
    markup = re.compile(r"\{\{|\}\}|\[\[|\]\]|\||</?\w+|==|\bthumb\b|\(\s*\)|\bp\. \d+\.")  # editorial [...] is prose
    assert not any(markup.search(row) for row in rows)
    assert rows == load_transfer_text(["wikipedia"], rows=500)["text"]  # the same rows name the same logit cache

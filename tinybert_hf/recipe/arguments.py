"""The recipe's options, one dataclass per concern, as `tinybert-hf` parses them (`HfArgumentParser`, as
transformers' `run_glue.py` does), and [`RecipeArguments`], all of them in one object, which the recipe's steps take.

Each subcommand parses the groups (and within them the options) it uses, so its `--help` lists only those. The module
imports nothing heavy: `tinybert-hf <command> --help` prints from it without importing torch or transformers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, get_args, get_type_hints

from ..data.source_names import GENERAL as GENERAL_TEXT
from ..data.source_names import JOINED as JOINED_TEXT
from ..data.source_names import source_name
from ..data.tasks import TEXT_TASK
from ..utils.processes import launched_processes

STUDENT_INITS = ("pruned-teacher", "layer-subset", "random")
# Names used by earlier versions (results.json of older runs); a bare path is read as 'general:<path>'.
STUDENT_INIT_ALIASES = {"teacher_layers": "layer-subset"}
AUTO = "auto"  # transfer text and augmentation chosen for the task (`RecipeArguments.resolved_for_task`)
DEFAULT_TRANSFER_ROWS = 2000  # transfer rows when text is asked for (or joined): the main job stays within 15 minutes


def check_choices(arguments, group: type | None = None) -> None:
    """Raise `ValueError` for an option of `group` (default: the arguments' own class) outside its fixed choices (its
    `Literal` type): the CLI's parser refuses those itself, arguments built in Python are checked here."""
    for name, hint in get_type_hints(group or type(arguments)).items():
        if getattr(hint, "__origin__", None) is Literal and getattr(arguments, name) not in get_args(hint):
            choices = ", ".join(map(repr, get_args(hint)))
            raise ValueError(f"`{name}` must be one of {choices}, got {getattr(arguments, name)!r}.")


def check_at_least(arguments, minimum: float, *names: str) -> None:
    """Raise `ValueError` for any of the options `names` below `minimum` (unset ones pass): a zero batch size or
    a negative epoch count would otherwise fail deep in a step, after earlier steps ran."""
    for name in names:
        value = getattr(arguments, name)
        if value is not None and value < minimum:
            raise ValueError(f"`{name}` must be at least {minimum:g}, got {value:g}.")


@dataclass
class OutputArguments:
    """Where a command writes."""

    _argument_group_name = "output"  # the section of `--help` (HfArgumentParser)

    output_dir: str = field(default="outputs/tinybert", metadata={"help": "Where every step writes its output."})


@dataclass
class RunRecordArguments:
    """How the recipe's run directory is kept: reruns, overwrites, checkpoints."""

    _argument_group_name = "run record and checkpoints"  # the section of `--help` (HfArgumentParser)

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output directory that holds another run (other settings) or another model: "
            "the recipe's own outputs there are deleted first. Without it such a directory is refused."
        },
    )
    save_steps: int | None = field(
        default=None,
        metadata={
            "help": "Checkpoint (and evaluate, for the best-model choice) every this many steps instead of every "
            "epoch, so a killed run resumes with less lost work."
        },
    )

    process_timeout: int = field(
        default=7200,
        metadata={
            "help": "Under a launcher (`accelerate launch`, `torchrun`): how many seconds a process waits for the "
            "others at a barrier, e.g. while the main process alone quantizes and scores the models."
        },
    )

    def __post_init__(self):
        check_at_least(self, 1, "save_steps", "process_timeout")


@dataclass
class CommonArguments:
    """What every command uses: the seed and which weight files may be loaded."""

    _argument_group_name = "seed and loading"  # the section of `--help` (HfArgumentParser)

    seed: int = field(default=0, metadata={"help": "Seed of data splits, augmentation and training."})
    allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "Also load models whose weights exist only as pickles (pytorch_model.bin), which can run code "
            "when loaded; only for files you trust. Default: safetensors only."
        },
    )


@dataclass
class DataArguments:
    """The task's data, and the extra held-out sets scored beside it."""

    _argument_group_name = "data"  # the section of `--help` (HfArgumentParser)

    task: Literal["text-classification", "token-classification"] = field(
        default=TEXT_TASK, metadata={"help": "'text-classification' or 'token-classification'."}
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Embedded 'rotten_tomatoes_snippets' / 'ner_tweets' (the defaults), or a Hub id ('glue', "
            "'rotten_tomatoes'). Leave unset with --train_file."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub configuration, e.g. 'sst2' of 'glue'."})
    train_file: str | None = field(default=None, metadata={"help": "Local CSV/TSV/JSON/JSONL/parquet training data."})
    validation_file: str | None = field(default=None, metadata={"help": "Local dev data (else cut from train)."})
    test_file: str | None = field(default=None, metadata={"help": "Local test data (else cut from train)."})
    text_column: str = field(default="text", metadata={"help": "Text column (tokens column for NER)."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Second sentence of pair tasks."})
    label_column: str = field(default="label", metadata={"help": "Label column (tag column for NER)."})
    max_length: int = field(default=64, metadata={"help": "Tokens per example (longer ones are truncated)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training rows."})
    data_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the data splits (cut from train, or the embedded data's by movie) and of "
            "`max_train_samples`, when it should differ from `seed`: e.g. students of several seeds against one "
            "teacher, whose test split must stay the one it never trained on. Default: `seed`."
        },
    )
    eval_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Extra labelled sets every model is also scored on, as accuracy on data the student was not "
            "distilled on: `name=path` entries (CSV/TSV/JSON/JSONL/parquet files, or data sets whose test split is "
            "used) with the training data's columns and labels. They are only measured, never trained or selected on."
        },
    )
    eval_label_map: str | None = field(
        default=None,
        metadata={
            "help": "Rename the eval files' labels to the training data's, e.g. 'negative=rotten,positive=fresh'."
        },
    )
    eval_max_length: int = field(
        default=128, metadata={"help": "Tokens per example of the eval files (held-out text is often longer)."}
    )

    def __post_init__(self):
        check_at_least(self, 1, "max_length", "max_train_samples", "eval_max_length")
        check_choices(self, DataArguments)


@dataclass
class TeacherArguments:
    """The teacher: given fine-tuned, or fine-tuned here from a backbone."""

    _argument_group_name = "teacher"  # the section of `--help` (HfArgumentParser)

    teacher: str | None = field(
        default=None, metadata={"help": "An already fine-tuned teacher (path or Hub id); skips teacher fine-tuning."}
    )
    teacher_backbone: str | None = field(
        default=None, metadata={"help": "Pretrained encoder to fine-tune into the teacher; default: packaged MiniLM."}
    )
    teacher_epochs: float = field(default=1.0, metadata={"help": "Teacher fine-tuning epochs."})
    teacher_learning_rate: float = field(default=1e-4, metadata={"help": "Teacher fine-tuning learning rate."})

    def __post_init__(self):
        check_at_least(self, 0, "teacher_epochs", "teacher_learning_rate")


@dataclass
class StudentArguments:
    """The student's shape and how it starts."""

    _argument_group_name = "student"  # the section of `--help` (HfArgumentParser)

    student_init: str = field(
        default="pruned-teacher",
        metadata={
            "help": "'pruned-teacher' (the default: cut from the teacher to the student shape by structured pruning), "
            "'layer-subset' (the teacher's embeddings and uniformly chosen layers, the teacher's width), 'random' "
            "(the student shape, random weights) or 'general:<path>' (a general-distilled student)."
        },
    )
    student_layers: int = field(default=4, metadata={"help": "Student depth."})
    student_hidden_size: int = field(default=312, metadata={"help": "Width of a 'pruned-teacher'/'random' student."})
    student_attention_heads: int = field(
        default=12, metadata={"help": "Heads per layer of a 'pruned-teacher'/'random' student."}
    )
    student_intermediate_size: int = field(
        default=1200, metadata={"help": "FFN width of a 'pruned-teacher'/'random' student."}
    )

    def __post_init__(self):
        check_at_least(
            self, 1, "student_layers", "student_hidden_size", "student_attention_heads", "student_intermediate_size"
        )
        self.student_init = STUDENT_INIT_ALIASES.get(self.student_init, self.student_init)
        if self.student_init not in STUDENT_INITS and not self.student_init.startswith("general:"):
            self.student_init = f"general:{self.student_init}"  # a bare path, as earlier versions took it
        shaped = self.student_init in ("pruned-teacher", "random")  # the two inits that take the student shape
        if shaped and self.student_hidden_size % self.student_attention_heads:
            from ..models.tinybert.configuration_tinybert import divisors_near  # only here: `--help` needs no torch

            raise ValueError(
                f"{self.student_attention_heads} heads do not divide "
                f"`student_hidden_size={self.student_hidden_size}`: choose a head count that does (e.g. "
                f"{divisors_near(self.student_hidden_size, self.student_attention_heads)})."
            )


@dataclass
class PruningArguments:
    """How structured pruning ranks and picks what it keeps."""

    _argument_group_name = "pruning"  # the section of `--help` (HfArgumentParser)

    pruning_importance: Literal["taylor", "activation", "magnitude"] = field(
        default="taylor",
        metadata={
            "help": "How pruning ranks structures: 'taylor' (the default, best measured: see docs/pruning.md), "
            "'activation' or 'magnitude'."
        },
    )
    layer_selection: Literal["uniform", "importance"] = field(
        default="uniform", metadata={"help": "How 'pruned-teacher' picks layers: 'uniform' or 'importance'."}
    )
    calibration_samples: int = field(
        default=512, metadata={"help": "Training rows the pruning importance is measured on."}
    )

    def __post_init__(self):
        check_choices(self, PruningArguments)
        check_at_least(self, 1, "calibration_samples")


@dataclass
class AugmentationArguments:
    """TinyBERT's data augmentation of the training text."""

    _argument_group_name = "augmentation"  # the section of `--help` (HfArgumentParser)

    augment: bool | None = field(
        default=None,
        metadata={
            "help": "Add TinyBERT-augmented copies of the training text; default: on unless stage 2 learns from "
            "transfer rows (the 'joined' text measured better off the training distribution at the same time)."
        },
    )
    num_augmentations: int = field(
        default=1, metadata={"help": "Variants per example (N_a; the paper: 20, days of CPU on 10k rows)."}
    )
    augment_fraction: float = field(
        default=0.25, metadata={"help": "Share of training rows that get variants (a budget knob on CPU)."}
    )
    replace_probability: float = field(default=0.4, metadata={"help": "Chance to replace each word (p_t)."})
    top_k: int = field(default=15, metadata={"help": "Candidates per word (K)."})
    masked_lm: str | None = field(
        default=None,
        metadata={
            "help": "English masked LM for candidates (e.g. bert-base-uncased); unset: neighbours in the "
            "teacher's input embeddings (offline fallback, logged)."
        },
    )
    word_vectors: str | None = field(default=None, metadata={"help": "GloVe-format file for multi-piece words."})

    def __post_init__(self):
        check_at_least(self, 0, "num_augmentations", "replace_probability")
        check_at_least(self, 1, "top_k")
        if not 0.0 <= self.augment_fraction <= 1.0:
            raise ValueError(f"`augment_fraction` must be in [0, 1], got {self.augment_fraction}.")


@dataclass
class TransferTextArguments:
    """Unlabelled text the student learns the teacher's predictions on, beyond the labelled rows."""

    _argument_group_name = "transfer text"  # the section of `--help` (HfArgumentParser)

    transfer_text: list[str] = field(
        default_factory=lambda: [AUTO],
        metadata={
            "help": "Unlabelled text for transfer: 'joined' (the training texts joined into longer passages, "
            "labels unused), 'general' (the packaged news articles and health tweets, offline), 'wikipedia' (the "
            "103 Wikipedia articles packaged in gensim: `pip install --no-deps gensim`) and/or your own text "
            "without labels (.txt one per line, a glob, .csv/.jsonl with a `text` column, a Wikipedia dump "
            ".xml[.bz2|.gz], or a Hub data set id), split into snippets; 'auto': 'joined' for single-text "
            "classification, else 'general'."
        },
    )
    transfer_rows: int | None = field(
        default=None,
        metadata={
            "help": "Snippets of `transfer_text` that stage 2 also learns the teacher's soft labels on (its logits "
            f"are cached on disk); 0 turns transfer off; default: {DEFAULT_TRANSFER_ROWS:,} when `transfer_text` is "
            "given or resolves to 'joined' (which holds about one snippet per 3 rows), else 0."
        },
    )
    transfer_in_intermediate: bool = field(
        default=False, metadata={"help": "Also add the transfer snippets to stage 1's rows (intermediate layers)."}
    )
    transfer_max_length: int = field(default=128, metadata={"help": "Tokens per transfer snippet."})
    recovery_steps: int = field(
        default=0,
        metadata={
            "help": "Before the task stages, distil the student's intermediate layers on the transfer text for this "
            "many steps (recovery of the cut layers' general features, for a 'pruned-teacher' student); 0 skips it."
        },
    )

    def __post_init__(self):
        if (self.transfer_rows or 0) < 0 or self.recovery_steps < 0:
            raise ValueError(
                f"`transfer_rows` and `recovery_steps` must be 0 or more, got {self.transfer_rows} and "
                f"{self.recovery_steps}."
            )
        if (self.transfer_rows or self.recovery_steps) and not self.transfer_text:
            raise ValueError("`transfer_rows` / `recovery_steps` need `transfer_text` (e.g. 'general').")
        # 'Joined' is the named source for every step that checks for it (the recipe's, the model card's), as it is
        # for the stream
        self.transfer_text = [source_name(source) for source in self.transfer_text]


@dataclass
class DistillationArguments:
    """How the student is trained against the teacher (every distillation step)."""

    _argument_group_name = "distillation"  # the section of `--help` (HfArgumentParser)

    batch_size: int = field(
        default=32,
        metadata={
            "help": "Training batch size of every step: the whole batch of one optimizer step, split evenly across "
            "the processes of a multi-process run (so the same command takes the same steps on any number)."
        },
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "Student learning rate (both stages)."})
    prediction_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Stage 2's own learning rate, if it should differ from `learning_rate` (TinyBERT's scripts fit "
            "the predictions at a lower rate than the layers); default: `learning_rate`."
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Prediction-stage temperature."})
    attention_loss: Literal["auto", "mse", "kl", "relation"] = field(
        default="auto",
        metadata={
            "help": "The attention loss of the intermediate-layer steps: 'mse' (TinyBERT's, on pre-softmax scores), "
            "'kl', or 'relation' (MiniLMv2's query/key/value relations: any head counts, and teachers such as MPNet "
            "and DeBERTa, whose scores hold position terms); 'auto': 'mse' where the teacher's scores can be "
            "recorded and its heads pair with the student's, else 'relation'."
        },
    )
    prediction_loss: Literal["soft_ce", "kl", "mse"] = field(
        default="soft_ce",
        metadata={
            "help": "Stage 2's loss on the teacher's logits: 'soft_ce' (TinyBERT's), 'kl' or 'mse' (on logits)."
        },
    )
    prediction_intermediate_losses: bool = field(
        default=False,
        metadata={
            "help": "Keep stage 1's losses (embedding, attention, hidden states) on in stage 2 beside the prediction "
            "loss, so the student's layers stay anchored to the teacher's while its predictions are fitted; the "
            "teacher then runs at every step instead of from cached logits."
        },
    )
    freeze_word_embeddings: bool = field(
        default=False,
        metadata={
            "help": "Keep the student's word embeddings as they were initialized in both stages: words the training "
            "rows lack then stay consistent with the words they have, instead of falling behind layers that moved."
        },
    )
    l1_penalty: float = field(
        default=0.0, metadata={"help": "L1 penalty on the student's attention and FFN weights (both stages)."}
    )
    l2_penalty: float = field(default=0.0, metadata={"help": "L2 penalty on the same weights in both stages."})

    def __post_init__(self):
        check_choices(self, DistillationArguments)
        check_at_least(self, 1, "batch_size")
        processes = launched_processes()
        if self.batch_size % processes:
            raise ValueError(
                f"`batch_size` {self.batch_size} does not split evenly across the {processes} processes of this run: "
                f"give a multiple of {processes} (it is the whole batch of a step, split across them)."
            )
        check_at_least(self, 0, "learning_rate", "l1_penalty", "l2_penalty")
        if self.prediction_learning_rate is not None:
            check_at_least(self, 0, "prediction_learning_rate")
        if self.temperature <= 0:
            raise ValueError(f"`temperature` must be above 0, got {self.temperature:g}.")


@dataclass
class StageArguments:
    """The recipe's two TinyBERT stages, and the comparison baseline."""

    _argument_group_name = "stages"  # the section of `--help` (HfArgumentParser)

    intermediate_epochs: float = field(default=0.3, metadata={"help": "Stage 1 epochs (0 skips the stage)."})
    prediction_epochs: float = field(default=1.0, metadata={"help": "Stage 2 epochs."})
    baseline: bool = field(
        default=False,
        metadata={"help": "Also fine-tune the same student on hard labels only, for comparison (about 1.5 min more)."},
    )

    def __post_init__(self):
        check_at_least(self, 0, "intermediate_epochs", "prediction_epochs")


@dataclass
class DeploymentArguments:
    """The int8 student and the speed measurement."""

    _argument_group_name = "deployment"  # the section of `--help` (HfArgumentParser)

    quantization_aware: bool = field(
        default=False,
        metadata={
            "help": "Run stage 2 with fake-quantized linear layers and embeddings (ONNX Runtime's int8 scheme), so "
            "the int8 student loses less than post-training quantization alone."
        },
    )
    int8: bool = field(
        default=True,
        metadata={"help": "Write the int8 ONNX student next to the student (student-int8/) and add its report row."},
    )
    int8_engine: Literal["onnxruntime", "ctranslate2"] = field(
        default="onnxruntime",
        metadata={
            "help": "Runtime of the int8 student: 'onnxruntime' (an int8 ONNX graph) or 'ctranslate2' (needs the "
            "ctranslate2 extra; students of uniform shape). See `tinybert-hf quantize --help`."
        },
    )
    int8_activations: Literal["per_row", "per_tensor"] = field(
        default="per_row",
        metadata={
            "help": "int8 activation scales: one per token ('per_row') or one per batch ('per_tensor', ONNX "
            "Runtime's quantize_dynamic; more predictions change). See `tinybert-hf quantize --help`."
        },
    )
    int8_weight_type: Literal["auto", "int8", "uint8"] = field(
        default="auto",
        metadata={"help": "int8 or uint8 weights; 'auto': int8 unless this CPU's uint8 x int8 kernel saturates."},
    )
    int8_exporter: Literal["torchscript", "dynamo"] = field(
        default="torchscript",
        metadata={"help": "torch's ONNX exporter for the int8 graph ('torchscript' lets attention fuse)."},
    )
    int8_per_channel: bool = field(default=True, metadata={"help": "int8 weight scales per output channel."})
    int8_reduce_range: bool = field(
        default=False, metadata={"help": "7-bit int8 weights (no int16 saturation on CPUs without VNNI)."}
    )
    speed_batch_size: int = field(default=32, metadata={"help": "Batch size of the throughput measurement."})
    speed_seq_length: int = field(default=64, metadata={"help": "Sequence length of the speed measurement."})

    def __post_init__(self):
        check_choices(self, DeploymentArguments)
        check_at_least(self, 1, "speed_batch_size", "speed_seq_length")


@dataclass
class HubArguments:
    """Publishing the student: Trainer's own Hub arguments."""

    _argument_group_name = "hub"  # the section of `--help` (HfArgumentParser)

    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "Push the finished student (weights, config, code, tokenizer, card) to `hub_model_id`. The "
            "repository is created, and the token checked, before any training."
        },
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub repository of the student (default: <your namespace>/<output_dir name>)."}
    )
    hub_strategy: Literal["end", "every_save", "checkpoint", "all_checkpoints"] = field(
        default="end",
        metadata={
            "help": "Trainer's hub_strategy for stage 2: 'end' pushes only the finished student; 'every_save', "
            "'checkpoint' (adds last-checkpoint/) and 'all_checkpoints' also push stage 2's epochs while it trains."
        },
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})

    def __post_init__(self):
        check_choices(self, HubArguments)


GROUPS = (
    OutputArguments,
    RunRecordArguments,
    CommonArguments,
    DataArguments,
    TeacherArguments,
    StudentArguments,
    PruningArguments,
    AugmentationArguments,
    TransferTextArguments,
    DistillationArguments,
    StageArguments,
    DeploymentArguments,
    HubArguments,
)


@dataclass
class RecipeArguments(*reversed(GROUPS)):  # reversed: dataclass fields follow the bases from the last one
    """Everything the recipe needs; each field is a `tinybert-hf distill --<field>` option, from the groups above.

    The defaults are the README's main job, sized for about 15 minutes on a 2-core CPU, installation included
    (teacher 1 epoch, a TinyBERT4 student pruned from it, stage 1 for 0.3 epoch, stage 2 for 1 epoch with 2,000
    snippets of the training texts joined into longer passages, labelled by the teacher). With a GPU, raise the
    epochs and `transfer_rows`, or turn augmentation on with `num_augmentations` (the paper: 20) and
    `augment_fraction=1`.
    """

    def __post_init__(self):
        # each group checks its own choices and ranges (a dataclass runs only the first __post_init__ it finds)
        for group in GROUPS:
            if "__post_init__" in vars(group):
                group.__post_init__(self)

    def resolved_for_task(self, single_texts: bool, token_level: bool = False) -> RecipeArguments:
        """A copy with the 'auto' defaults made concrete for a task whose rows are `single_texts` (text
        classification of one text, not pairs or tokens): transfer text 'joined' there and 'general' elsewhere;
        `transfer_rows` 2,000 when the text resolves to 'joined' or the user named any (text asked for is used, never
        dropped in silence), else 0; augmentation on unless stage 2 learns from transfer rows (they take its place)
        or the task is `token_level` (word replacements would misalign its tags). `results.json` records the copy."""
        sources = [source for source in self.transfer_text if source != AUTO]
        if AUTO in self.transfer_text:
            sources.append(JOINED_TEXT if single_texts else GENERAL_TEXT)
        sources = list(dict.fromkeys(sources))
        rows = self.transfer_rows
        if rows is None:
            named = any(source != AUTO for source in self.transfer_text)
            rows = DEFAULT_TRANSFER_ROWS if named or JOINED_TEXT in sources else 0
        augment = self.augment
        if augment is None:
            augment = not token_level and not rows
        return dataclasses.replace(self, transfer_text=sources, transfer_rows=rows, augment=augment)

    @classmethod
    def from_groups(cls, *groups) -> RecipeArguments:
        """One object from parsed groups (or filtered copies of them); options no group holds keep their defaults."""
        values = {}
        for group in groups:
            values.update({item.name: getattr(group, item.name) for item in dataclasses.fields(group)})
        return cls(**values)


# ---- the other subcommands' own options ----------------------------------------------------------------------

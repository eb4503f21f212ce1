"""`python -m tinybert_hf <command> ...`: the `tinybert-hf` command line, for launchers that start modules
(`accelerate launch -m`, `torchrun -m`)."""

from .commands.cli import main

raise SystemExit(main())

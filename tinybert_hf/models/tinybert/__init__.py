"""TinyBERT: its configuration, its modeling (shipped beside saved students for `trust_remote_code`) and
the conversion of BERT-format models into it.

The configuration and modeling modules import only torch, transformers and each other, so `save_pretrained` can copy
them next to a student's weights."""

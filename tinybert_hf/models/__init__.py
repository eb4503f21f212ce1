"""Model architectures: the TinyBERT configuration, modeling and conversion from BERT (`models/tinybert/`)."""

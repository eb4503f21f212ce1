"""Data: loading task data sets and files, the packaged offline defaults, tokenization, augmentation and transfer
text."""

"""Smaller models from trained ones: structured pruning (heads, neurons, channels, layers), the importance scores
it ranks by, and magnitude pruning (unstructured sparsity)."""

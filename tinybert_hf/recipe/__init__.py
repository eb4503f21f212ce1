"""The one-command recipe: its argument groups, its steps, its output directory, its run records and its report.

The recipe uses every other package; nothing but `commands/` imports it."""

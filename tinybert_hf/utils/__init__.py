"""What every package leans on: whole-or-nothing saving and safe loading of model directories."""

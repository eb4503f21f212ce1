"""The Hugging Face Hub: pushing a student and writing its model card."""

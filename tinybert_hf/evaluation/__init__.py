"""Numbers about models: task metrics, and speed and size measurements."""

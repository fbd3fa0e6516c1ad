"""Training data: synthetic problems with gold traces, GSM8K, prompts."""

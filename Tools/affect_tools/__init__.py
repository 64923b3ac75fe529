"""Shared helpers for Affect's development tools: safetensors I/O in the Affect format, the restricted
unpickler for PyTorch checkpoints, and trained-looking random weights."""

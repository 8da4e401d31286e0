"""Training, search and evaluation loops; run folders and checkpoints."""

"""Inference on a trained (or untrained) SK model: `prediction` (batched, length-sorted scoring into
records), `multi_adapter` (many adapters on one backbone, mixed batches), `zero_shot` (the label-word
model before training). Imports the core, data and scale, never training, the bench, serving or the CLI."""

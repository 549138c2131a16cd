"""The run directory and the steps that fill it."""

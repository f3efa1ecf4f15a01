"""The Weave-NN system itself, importable and testable without the CLI.

Nothing under this package imports typer or rich: commands call into it and print.
"""

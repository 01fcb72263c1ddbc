"""The headless command line: a thin layer of argparse and Rich over the engine."""

"""The dataset: Delta tables, their rows, the sink that writes them, backfill, reading and upkeep."""

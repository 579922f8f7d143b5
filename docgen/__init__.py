"""Generators of the docs kept equal to the code (docs/CONFIG.md, docs/schemas/): not shipped in the wheel."""

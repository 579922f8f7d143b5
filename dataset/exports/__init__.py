"""Training-ready exports of a pinned table version, one module per format (docs/dataset.md "Exports").

`source.read_source` picks the rows (final labels by default) and assigns each its chat's split;
`hf` writes a Hugging Face `datasets` folder, `chat_jsonl` one role-tagged conversation per line.
"""

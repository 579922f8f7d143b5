"""Dead-letter records, shared by the ingest (bad payloads) and the streams (bad records)."""

import base64


def encode_original(original: bytes) -> dict[str, str]:
    """Original bytes as text when they are UTF-8, else base64 (named by `original_encoding`)."""
    try:
        return {"original_encoding": "utf-8", "original": original.decode("utf-8")}
    except UnicodeDecodeError:
        return {"original_encoding": "base64", "original": base64.b64encode(original).decode()}

"""Shared kernel of messagehooks: settings, schema, ids, topics, broker and CLI."""

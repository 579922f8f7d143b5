"""ingest: the Starlette receiver of Landbot MessageHooks; publishes to Kafka, spools when it cannot."""

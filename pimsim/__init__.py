"""pimsim: processing-in-memory accelerator simulator."""

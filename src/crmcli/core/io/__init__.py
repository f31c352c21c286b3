"""Import and export pipelines: reading files, mapping columns, validating rows in bulk, writing CSV/vCard."""

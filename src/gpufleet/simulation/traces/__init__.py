"""Trace importers: public GPU-cluster and LLM-inference traces turned into jobs or inference demand.

Each importer reads one file format, reports rows read and rows skipped with reasons, and rejects a malformed
file with a `TraceError` that names the file, the line and what was expected.
"""

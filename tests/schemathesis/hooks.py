"""Schemathesis hooks for the conformance run (crates/cli/tests/api_conformance.rs).

tus PATCH bodies are `application/offset+octet-stream`: raw bytes, sent
as schemathesis sends `application/octet-stream`.
"""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

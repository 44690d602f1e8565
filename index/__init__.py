"""Retrieval over an organisation's documents: load, chunk, embed, store (FAISS + BM25), search.

    from index import DocumentIndex
    idx = DocumentIndex.open("workspace/index")
    report = idx.ingest(["docs/"])            # incremental; report.failed says what was skipped and why
    hits = idx.search("how do I rotate keys?", k=5)   # hybrid by default; list of Source
"""
from index.document_index import DocumentIndex, EmbedderMismatchError
from index.store import DocumentInfo
from index.types import FailedFile, IngestReport, Source

__all__ = ["DocumentIndex", "DocumentInfo", "EmbedderMismatchError", "FailedFile", "IngestReport", "Source"]

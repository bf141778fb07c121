"""BM25 keyword index on tantivy, embedded in the shard process.

Commits are the expensive part (~15 ms), so writes only mark the index dirty and the next
search (or flush) commits once: read-your-writes without a commit per store.
"""
from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from shards.indexes.base import IndexFilter, IndexRow
from shards.types import Hit

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 64
CONTEXT_BOOST = 0.3  # a word in a neighbouring turn counts a third of one in the memory itself


# Function words carry no topic; in a question ("when did she go to the …") they only add
# noise to BM25. Kept when a query has nothing else.
STOP_WORDS = frozenset("""
a an the and or but if then so of to in on at by for with from into onto about as is are was
were be been being am do does did doing have has had having i me my mine we us our ours you
your yours he him his she her hers it its they them their theirs this that these those there
here what which who whom whose when where why how can could would should will shall may might
must not no nor too very just also than any some all each both few more most other such own
same only s t don doesn didn isn aren wasn weren won wouldn shouldn couldn ever
""".split())


def query_terms(text: str) -> list[str]:
    """Words of a query, lower-cased, function words dropped: no query syntax survives this."""
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in STOP_WORDS]
    return (content or words)[:MAX_QUERY_TERMS]


class TantivyKeywordIndex:
    def __init__(self, path: Path, heap_bytes: int = 50_000_000) -> None:
        try:
            import tantivy
        except ImportError as exc:  # pragma: no cover
            raise ImportError("the embedded keyword index needs `pip install tantivy`") from exc
        self._t = tantivy
        path.mkdir(parents=True, exist_ok=True)
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("key", stored=True, indexed=True, fast=True)
        builder.add_integer_field("ns_id", indexed=True)
        builder.add_integer_field("memory_type", indexed=True)
        builder.add_integer_field("session_key", indexed=True)
        builder.add_text_field("content", stored=False, tokenizer_name="en_stem")
        builder.add_text_field("context", stored=False, tokenizer_name="en_stem")
        self._schema = builder.build()
        self.recreated = False
        try:
            self._index = tantivy.Index(self._schema, path=str(path))
        except ValueError:
            # Written by an older schema. The index is derived data: start it afresh and let
            # the shard re-index from its record store.
            shutil.rmtree(path)
            path.mkdir(parents=True)
            self._index = tantivy.Index(self._schema, path=str(path))
            self.recreated = True
        self._writer = self._index.writer(heap_size=heap_bytes, num_threads=1)
        self._dirty = False
        self._lock = threading.RLock()

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        with self._lock:
            for r in rows:
                self._writer.delete_documents_by_term("key", r.key)
                self._writer.add_document(self._t.Document(
                    key=r.key, ns_id=r.ns_id, memory_type=r.memory_type,
                    session_key=r.session_key, content=r.content, context=r.context,
                ))
            self._dirty = self._dirty or bool(rows)

    def delete(self, keys: Sequence[int]) -> None:
        with self._lock:
            for key in keys:
                self._writer.delete_documents_by_term("key", int(key))
            self._dirty = self._dirty or bool(keys)

    def search(self, text: str, flt: IndexFilter, limit: int) -> list[Hit]:
        terms = query_terms(text)
        if not terms:
            return []
        t = self._t
        with self._lock:
            self.flush()
            text_query = self._index.parse_query(" ".join(terms), ["content", "context"],
                                                 field_boosts={"context": CONTEXT_BOOST})
            # Filters score nothing: they only narrow what BM25 ranks.
            must = [(t.Occur.Must, text_query),
                    (t.Occur.Must, t.Query.const_score_query(
                        t.Query.term_query(self._schema, "ns_id", flt.ns_id), 0.0))]
            if flt.memory_types:
                types = t.Query.boolean_query([
                    (t.Occur.Should, t.Query.term_query(self._schema, "memory_type", c))
                    for c in flt.memory_types
                ])
                must.append((t.Occur.Must, t.Query.const_score_query(types, 0.0)))
            if flt.session_key is not None:
                must.append((t.Occur.Must, t.Query.const_score_query(
                    t.Query.term_query(self._schema, "session_key", flt.session_key), 0.0)))
            searcher = self._index.searcher()
            result = searcher.search(t.Query.boolean_query(must), limit)
            return [
                Hit(key=int(searcher.doc(address)["key"][0]), score=float(score))
                for score, address in result.hits
            ]

    def others_wrote(self) -> None:
        """tantivy: one process owns the directory, so there are no other writers."""

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._writer.commit()
                self._index.reload()
                # Files of segments that merges replaced (deleted documents' terms in them).
                self._writer.garbage_collect_files()
                self._dirty = False

    def count(self) -> int:
        with self._lock:
            self.flush()
            return int(self._index.searcher().num_docs)

    def clear(self) -> None:
        with self._lock:
            self.flush()  # delete_all_documents reaches committed documents only
            self._writer.delete_all_documents()
            self._dirty = True
            self.flush()

    def close(self) -> None:
        with self._lock:
            self.flush()
            self._writer.wait_merging_threads()

"""Graph stores: the port and its adapters (embedded SQLite by default, Neo4j)."""

from .port import ContactSpan, GraphBatch, GraphReader, GraphStore, StoreCounts

__all__ = ["ContactSpan", "GraphBatch", "GraphReader", "GraphStore", "StoreCounts", "open_store"]


def open_store(url: str) -> GraphStore:
    """Open a store from a URL.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``sqlite://:memory:`` for the embedded store; ``neo4j://``, ``neo4j+s://``,
    ``bolt://`` or ``bolt+s://`` for Neo4j (user and password from
    ``TRACEGRAPH_NEO4J_USER`` / ``TRACEGRAPH_NEO4J_PASSWORD``, database from
    ``TRACEGRAPH_NEO4J_DATABASE``).
    """
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        path = url.removeprefix("sqlite://")
        if path in ("", ":memory:", "/:memory:"):
            return SQLiteStore(":memory:")
        return SQLiteStore(path.removeprefix("/"))
    if url.split("://", 1)[0] in ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"):
        from .neo4j import Neo4jStore

        return Neo4jStore.from_env(url)
    raise ValueError(f"unknown store URL {url!r}: expected sqlite:///path or neo4j://host:port")

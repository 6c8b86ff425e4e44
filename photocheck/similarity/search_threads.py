"""One OpenMP thread per faiss search, in whichever thread calls it.

The server already checks several photos at once (request and job threads), so
OpenMP threads on top of them only compete for the same cores. faiss's thread count
is per calling thread: a setting at import covers only the main thread, and a job or
request thread would start a team of spinning threads (measured: 10x the CPU per
ORB search on a loaded 2-core server; the vote query in a job thread ran on both cores,
the same CPU when the machine was idle).
"""

from __future__ import annotations

import faiss

__all__ = ["one_search_thread"]


def one_search_thread() -> None:
    """Call in the thread about to search, just before it searches (cheap)."""
    faiss.omp_set_num_threads(1)


one_search_thread()  # the importing (main) thread

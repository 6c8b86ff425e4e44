"""Same-scene candidates from the local features themselves: descriptor voting.

No global descriptor is a safe pre-filter (issue 11: cutting EfficientNet features at
the 95th percentile of the different pairs' cosine loses 27/70 developer same-scene
pairs, mean-pooled XFeat does no better). A re-shot house shares *some* exact local
structures with the first photo (a window corner, a gutter end) even when the view
as a whole looks different. So each photo's best ``QUERY_KEYPOINTS`` XFeat
descriptors look up their nearest descriptors among every indexed photo's best
``INDEX_KEYPOINTS``; each close neighbour is one vote for the photo it belongs to
(a query descriptor votes once per photo), and the photos with the most votes are
the candidates that ``match_scene`` verifies.

Up to ``FLAT_MAX`` vectors the search is exact (faiss ``IndexFlatIP``); above, an
inverted file of 8-bit scalar-quantised vectors (``IndexIVFScalarQuantizer``, 64 bytes
a vector + faiss's 8-byte id; k-means coarse quantiser trained on a bounded sample of
the indexed descriptors with a fixed seed, ``NPROBE`` lists searched): a query reads
NPROBE lists, not the whole index. An index that grows past ``FLAT_MAX`` by ``add``
(a county's photos arriving one by one) turns into the inverted file once, trained on
its own vectors. ``scripts/bench_scene_scale.py`` measures recall@K with every other
real photo as a distractor and the cost on a synthetic index of 100,000 photos.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from .search_threads import one_search_thread
from .xfeat_scene import SceneFeatures

__all__ = ["Candidate", "DescriptorVoteIndex"]

# Measured on the 256 photos of ../shared/data, every labelled same-scene pair ranked
# from whichever side ranks it higher: 128 keypoints at cosine 0.70 put 68/70 in the
# top 4, 69/70 in the top 8, 70/70 in the top 16 (at cosine 0.80: 66, 67, 69; 256
# keypoints at 0.70: 68, 69, 69 for 4x the search cost).
QUERY_KEYPOINTS = 128  # XFeat keypoints come best first
INDEX_KEYPOINTS = 128
NEIGHBOURS = 8  # nearest descriptors looked at per query descriptor
VOTE_MIN_COSINE = 0.70  # a neighbour this close votes
# Vectors searched exactly; an inverted file beyond. Exact search reads every vector for
# every query (`photocheck dedup` of 2,000 photos: 8 TFLOP, all pairs in effect); the
# inverted file of the 256 real photos (724 lists) found the same pairs (@8 70/70,
# bench_scene_scale.py), so it takes over from ~390 photos.
FLAT_MAX = 50_000
NPROBE = 8
# Lists cost at build and add (each vector is assigned against every list: 12.8 M x
# 4096 x 64 at 100,000 photos did not finish in 30 min on the shared machine), and
# save at query (fewer vectors per probed list); 1024 is the measured compromise
# (bench_scene_scale.py --synthetic 100000 prints both).
MAX_LISTS = 1024
TRAIN_PER_LIST = 40  # k-means sample: faiss asks for >= 39 points a list
_SEED = 1234


@dataclass(frozen=True)
class Candidate:
    key: Hashable
    votes: int


class DescriptorVoteIndex:
    """Photos' best XFeat descriptors, for candidates by votes (see the module docstring).

    Build once with ``build`` (the dedup batch, or a county's stored photos), then
    ``add`` more and ``query``. Not thread-safe for concurrent ``add``.
    """

    def __init__(self) -> None:
        self._keys: list[Hashable] = []
        self._owners: list[np.ndarray] = []  # photo number of each indexed vector
        self._index: faiss.Index = faiss.IndexFlatIP(64)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def vectors(self) -> int:
        return int(self._index.ntotal)

    def memory_bytes(self) -> int:
        """Resident bytes: the vectors (float32 exact, or 8-bit codes + faiss's 64-bit
        ids in the inverted lists), the coarse centroids, the owner of each vector."""
        n = self._index.ntotal
        if isinstance(self._index, faiss.IndexIVF):
            per = self._index.code_size + 8
            fixed = self._index.nlist * 64 * 4
        else:
            per, fixed = 64 * 4, 0
        return n * (per + 4) + fixed + 8 * len(self._keys)

    @classmethod
    def build(
        cls, items: Sequence[tuple[Hashable, SceneFeatures]], nlist: int | None = None
    ) -> DescriptorVoteIndex:
        """An index of ``items``; an inverted file when they hold more than FLAT_MAX
        vectors (or ``nlist`` is given), trained on their own descriptors."""
        self = cls()
        vecs = [_best(f, INDEX_KEYPOINTS) for _, f in items]
        total = sum(len(v) for v in vecs)
        if nlist is None and total > FLAT_MAX:
            nlist = min(int(4 * np.sqrt(total)), MAX_LISTS)
        if not total:
            self._keys = [key for key, _ in items]
            return self
        every = np.vstack(vecs)
        if nlist:
            self._index = _ivf(every, nlist)
        self._keys = [key for key, _ in items]
        self._index.add(every)
        self._owners = [np.repeat(np.arange(len(vecs), dtype=np.int32), [len(v) for v in vecs])]
        return self

    def add(self, key: Hashable, features: SceneFeatures) -> None:
        self._add(key, _best(features, INDEX_KEYPOINTS))

    def add_many(self, items: Sequence[tuple[Hashable, SceneFeatures]]) -> None:
        """``add`` of many photos in one search-structure update (a start-up load, a
        dedup batch): the coarse assignment runs as one matrix product, not per photo."""
        vecs = [_best(f, INDEX_KEYPOINTS) for _, f in items]
        first = len(self._keys)
        self._keys.extend(key for key, _ in items)
        sizes = [len(v) for v in vecs]
        if sum(sizes):
            self._index.add(np.vstack(vecs))
            photos = np.arange(first, first + len(vecs), dtype=np.int32)
            self._owners.append(np.repeat(photos, sizes))
            self._outgrown()

    def _add(self, key: Hashable, vecs: np.ndarray) -> None:
        n = len(self._keys)
        self._keys.append(key)
        if len(vecs):
            self._index.add(vecs)
            self._owners.append(np.full(len(vecs), n, np.int32))
            self._outgrown()

    def _outgrown(self) -> None:
        """A flat index past FLAT_MAX vectors becomes the inverted file (once): its own
        exact vectors train the coarse quantiser and are added again."""
        flat = self._index
        if isinstance(flat, faiss.IndexIVF) or flat.ntotal <= FLAT_MAX:
            return
        every = flat.reconstruct_n(0, flat.ntotal)
        self._index = _ivf(every, min(int(4 * np.sqrt(len(every))), MAX_LISTS))
        self._index.add(every)

    def _owner_of(self, ids: np.ndarray) -> np.ndarray:
        if len(self._owners) != 1:  # adds since the last query: join once
            self._owners = [np.concatenate([np.zeros(0, np.int32), *self._owners])]
        return self._owners[0][ids].astype(np.int64)

    def query(
        self,
        features: SceneFeatures,
        top: int,
        min_votes: int = 1,
        exclude: Hashable = None,
        keep: Callable[[Hashable], bool] | None = None,
    ) -> list[Candidate]:
        """The ``top`` photos with the most votes (at least ``min_votes``), best first;
        ``exclude`` and the photos ``keep`` refuses are skipped, not counted."""
        q = _best(features, QUERY_KEYPOINTS)
        if not len(q) or not self._index.ntotal:
            return []
        one_search_thread()
        sims, ids = self._index.search(q, min(NEIGHBOURS, self._index.ntotal))
        ok = (ids >= 0) & (sims >= VOTE_MIN_COSINE)
        rows = np.repeat(np.arange(len(q)), ids.shape[1])[ok.ravel()]
        owners = self._owner_of(ids[ok])
        pairs = np.unique(rows * len(self._keys) + owners)  # one vote per query and photo
        photos, votes = np.unique(pairs % len(self._keys), return_counts=True)
        order = np.lexsort((photos, -votes))
        out = []
        for i in order:
            key = self._keys[int(photos[i])]
            if votes[i] < min_votes:
                break
            if (exclude is not None and key == exclude) or (keep is not None and not keep(key)):
                continue
            out.append(Candidate(key, int(votes[i])))
            if len(out) == top:
                break
        return out


def _best(f: SceneFeatures, n: int) -> np.ndarray:
    return np.ascontiguousarray(f.descriptors[:n], dtype=np.float32)


def _ivf(sample: np.ndarray, nlist: int) -> faiss.Index:
    quantiser = faiss.IndexFlatIP(64)
    index = faiss.IndexIVFScalarQuantizer(
        quantiser, 64, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = _SEED
    index.cp.niter = 10
    rng = np.random.default_rng(_SEED)
    take = min(len(sample), TRAIN_PER_LIST * nlist)  # bounded: k-means cost grows with it
    index.train(sample[rng.choice(len(sample), take, replace=False)])
    index.nprobe = NPROBE
    return index

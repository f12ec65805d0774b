"""Redis adapter for a cause's catalog as the gateway writes it: ids, texts, accepted set."""

from __future__ import annotations

import logging

import numpy as np
import redis.asyncio as aioredis

from pairwise import keys, proposal_record
from ranker.ranking import Catalog

logger = logging.getLogger(__name__)


class CatalogReader:
    """Reads one cause's catalog; texts are fetched once per proposal (they never change)."""

    def __init__(self, client: aioredis.Redis, cause_id: str) -> None:
        self.cause_id = cause_id
        self._redis = client

    async def version(self) -> int:
        """The catalog version counter (0 when the cause has no proposals yet)."""
        return int(await self._redis.get(keys.catalog_version(self.cause_id)) or 0)

    async def read(self, previous: Catalog | None) -> Catalog:
        """A consistent view: version, proposal ids by index and accepted indices are read in
        one MULTI; only the texts of proposals unknown to `previous` are fetched after."""
        known = len(previous.proposal_ids) if previous else 0
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.catalog_version(self.cause_id))
            pipe.lrange(keys.proposal_ids(self.cause_id), known, -1)
            pipe.smembers(keys.accepted(self.cause_id))
            version, new_ids, members = await pipe.execute()
        new_ids = [raw.decode() for raw in new_ids]
        texts = await self._texts(new_ids)
        complete = len(texts) == len(new_ids)
        new_ids = new_ids[:len(texts)]
        proposal_ids = (previous.proposal_ids if previous else ()) + tuple(new_ids)
        all_texts = (previous.texts if previous else ()) + tuple(texts)
        accepted = []
        for member in members:
            try:
                index = int(member)
            except ValueError:
                logger.error("accepted set holds a non-integer",
                             extra={"cause_id": self.cause_id, "member": member})
                continue
            if 0 <= index < len(proposal_ids):
                accepted.append(index)
            elif complete:
                logger.error("accepted proposal index has no proposal id",
                             extra={"cause_id": self.cause_id, "index": index})
        # A proposal whose record is not written yet ends the view early; version -1 makes
        # the next poll read again rather than wait for another catalog change.
        return Catalog(version=int(version or 0) if complete else -1,
                       proposal_ids=proposal_ids, texts=all_texts,
                       accepted=np.array(sorted(accepted), dtype=np.int64))

    async def _texts(self, proposal_ids: list[str]) -> list[str]:
        """Texts of `proposal_ids`, stopping before the first one without a record."""
        if not proposal_ids:
            return []
        records = await self._redis.hmget(keys.proposals(self.cause_id), proposal_ids)
        texts = []
        for proposal_id, record in zip(proposal_ids, records, strict=True):
            if record is None:
                break
            try:
                texts.append(proposal_record.decode(record).text)
            except ValueError:
                logger.error("malformed proposal record",
                             extra={"cause_id": self.cause_id, "proposal_id": proposal_id})
                texts.append("")
        return texts

"""The retake list: households whose current photo was rejected."""

from __future__ import annotations

from fastapi import APIRouter

from photocheck.store.repo import retake_households

from ..deps import SessionDep, VillageScope
from ..schemas import RetakeOut

router = APIRouter(tags=["retakes"])


@router.get("/retakes", response_model=list[RetakeOut])
def retakes(scope: VillageScope, session: SessionDep) -> list[RetakeOut]:
    """Own village for a village account, the town's villages for a town, all for a county."""
    rows = retake_households(
        session, scope.county_id, town_id=scope.town_id, village_id=scope.village_id
    )
    return [
        RetakeOut(
            household_id=h.household_code,
            head_name=h.head_name,
            town=h.village.town.name,
            village=h.village.name,
            photo_id=p.id,
            uploaded_at=p.uploaded_at,
            reasons=p.reasons,
        )
        for h, p in rows
    ]

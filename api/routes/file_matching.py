"""Which household each file of a dropped folder is for (the village page asks here,
so the rule lives once, in ``photocheck.filename_match``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from photocheck.filename_match import HouseholdName, match_files
from photocheck.store import Role
from photocheck.store.repo import village_households

from ..deps import CurrentUser, SessionDep
from ..errors import ApiError

router = APIRouter(prefix="/households", tags=["households"])


class MatchIn(BaseModel):
    filenames: list[str] = Field(max_length=5000)


class Candidate(BaseModel):
    household_id: str
    head_name: str


class FileMatchOut(BaseModel):
    filename: str
    status: str  # matched | unknown | ambiguous | several_files
    household_id: str | None
    candidates: list[Candidate]


class MatchOut(BaseModel):
    files: list[FileMatchOut]


@router.post("/match-files", response_model=MatchOut)
def match_filenames(body: MatchIn, user: CurrentUser, session: SessionDep) -> MatchOut:
    """Match file names to the caller's village households; nothing is uploaded or guessed."""
    if user.role != Role.VILLAGE or user.village_id is None:
        raise ApiError(403, "FORBIDDEN", "only a village's verifier account matches its photos")
    if any(not 0 < len(f) <= 400 for f in body.filenames):
        raise ApiError(422, "INVALID_REQUEST", "a file name is empty or longer than 400 characters")
    households = [h for h, _ in village_households(session, user.village_id)]
    heads = {h.household_code: h.head_name for h in households}
    matches = match_files(
        body.filenames, [HouseholdName(h.household_code, h.head_name) for h in households]
    )
    return MatchOut(
        files=[
            FileMatchOut(
                filename=m.filename,
                status=m.status.value,
                household_id=m.household_id,
                candidates=[Candidate(household_id=c, head_name=heads[c]) for c in m.candidates],
            )
            for m in matches
        ]
    )

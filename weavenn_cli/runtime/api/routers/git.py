"""`/git`: the vault repository's status, history and diffs; commit, push and pull."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field

from weavenn_cli.runtime.api import deps
from weavenn_cli.runtime.git.repository import (
    MAX_LOG,
    CommitResult,
    GitRepository,
    LogEntry,
    Status,
    SyncResult,
)

Git = Annotated[GitRepository, Depends(deps.git)]


class CommitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, Field(min_length=1, max_length=10_000)]
    files: list[Annotated[str, Field(max_length=500)]] | None = Field(default=None, max_length=1000)


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remote: str | None = None
    branch: str | None = None


class Log(BaseModel):
    items: list[LogEntry]


class Diff(BaseModel):
    diff: str


router = APIRouter(prefix="/git", tags=["git"])


@router.get("/status", response_model=Status)
def git_status(repository: Git) -> Status:
    return repository.status()


@router.get("/log", response_model=Log)
def git_log(
    repository: Git,
    path: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG)] = 20,
) -> Log:
    return Log(items=repository.log(path, limit))


@router.get("/diff", response_model=Diff)
def git_diff(
    repository: Git,
    path: Annotated[str | None, Query(max_length=500)] = None,
    commit: Annotated[str | None, Query(max_length=200)] = None,
) -> Diff:
    return Diff(diff=repository.diff(path, commit))


@router.post("/commit", response_model=CommitResult, status_code=status.HTTP_201_CREATED)
def git_commit(body: CommitRequest, repository: Git) -> CommitResult:
    return repository.commit(body.message, body.files)


@router.post("/push", response_model=SyncResult)
def git_push(repository: Git, body: SyncRequest | None = None) -> SyncResult:
    request = body or SyncRequest()
    return repository.push(request.remote, request.branch)


@router.post("/pull", response_model=SyncResult)
def git_pull(repository: Git, body: SyncRequest | None = None) -> SyncResult:
    request = body or SyncRequest()
    return repository.pull(request.remote, request.branch)

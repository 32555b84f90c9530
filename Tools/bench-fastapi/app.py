"""The comparison baseline for Tools/bench: the same read endpoints as Sitrep, written the way
the seed's FastAPI + uvicorn + asyncpg service would be, over the same database and the same
dev-issuer RS256 tokens. Not part of the product; only Tools/bench starts it."""

import base64
import datetime as dt
import hashlib
import os
import uuid
from typing import Literal

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, Field

ISSUER = "https://sitrep.local/dev-issuer"
AUDIENCE = "api://sitrep"
with open(os.environ["SITREP_DEV_ISSUER_KEY"], "rb") as f:
    PUBLIC_KEY = serialization.load_pem_private_key(f.read(), password=None).public_key()

app = FastAPI()
pool: asyncpg.Pool | None = None

COLUMNS = """id, source, source_id, title, summary, source_url, category, severity, confidence::float8, model_version,
    tags, region, published_at, status, triage_note, triaged_by, triaged_at, ingested_at, version"""


@app.on_event("startup")
async def startup() -> None:
    global pool
    url = os.environ["SITREP_DATABASE_URL"].split("?")[0]
    pool = await asyncpg.create_pool(url, min_size=4, max_size=int(os.environ.get("BENCH_POOL", "10")))


def authenticate(authorization: str | None) -> dict:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "authentication required")
    try:
        return jwt.decode(authorization[7:], PUBLIC_KEY, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    except jwt.PyJWTError as e:
        raise HTTPException(401, str(e))


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def signal(r: asyncpg.Record) -> dict:
    return {
        "id": str(r["id"]), "source": r["source"], "sourceId": r["source_id"], "title": r["title"],
        "summary": r["summary"], "sourceUrl": r["source_url"], "category": r["category"], "severity": r["severity"],
        "confidence": r["confidence"], "modelVersion": r["model_version"], "tags": list(r["tags"]),
        "region": r["region"], "publishedAt": iso(r["published_at"]), "status": r["status"],
        "triageNote": r["triage_note"], "triagedBy": r["triaged_by"], "triagedAt": iso(r["triaged_at"]),
        "ingestedAt": iso(r["ingested_at"]), "etag": f'"{r["version"]}"',
    }


def cursor_id(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    if not raw.startswith("v1:"):
        raise HTTPException(400, "invalid cursor")
    return uuid.UUID(raw[3:])


@app.get("/v1/signals")
async def list_signals(limit: int = Query(50, ge=1, le=200), cursor: str | None = None,
                       authorization: str | None = Header(None)) -> dict:
    authenticate(authorization)
    after = cursor_id(cursor)
    async with pool.acquire() as conn:
        if after is None:
            rows = await conn.fetch(f"SELECT {COLUMNS} FROM signals ORDER BY published_at DESC, id DESC LIMIT $1", limit + 1)
        else:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM signals WHERE (published_at, id) < (SELECT published_at, id FROM signals WHERE id = $1) "
                "ORDER BY published_at DESC, id DESC LIMIT $2", after, limit + 1)
    items = [signal(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = base64.urlsafe_b64encode(f"v1:{items[-1]['id']}".encode()).decode().rstrip("=")
    return {"items": items, "nextCursor": next_cursor}


@app.get("/v1/signals/{signal_id}")
async def get_signal(signal_id: uuid.UUID, authorization: str | None = Header(None)) -> dict:
    authenticate(authorization)
    async with pool.acquire() as conn:
        r = await conn.fetchrow(f"SELECT {COLUMNS} FROM signals WHERE id = $1", signal_id)
    if r is None:
        raise HTTPException(404, "not found")
    return signal(r)


@app.get("/v1/dashboard")
async def dashboard(authorization: str | None = Header(None)) -> dict:
    authenticate(authorization)
    now = dt.datetime.now(dt.timezone.utc)
    async with pool.acquire() as conn:
        posture = await conn.fetch("SELECT domain, level, rationale, set_by, set_at, version FROM posture")
        stats = await conn.fetch(
            "SELECT severity, category, status, count(*) FROM signals WHERE published_at >= $1 "
            "GROUP BY GROUPING SETS ((severity), (category), (status), ())", now - dt.timedelta(hours=24))
        briefing = await conn.fetchrow(
            "SELECT id, title, status, briefing_date, updated_at FROM briefings ORDER BY briefing_date DESC, updated_at DESC LIMIT 1")
        actions = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'open') o, count(*) FILTER (WHERE status = 'in_progress') p, "
            "count(*) FILTER (WHERE status = 'blocked') b, "
            "count(*) FILTER (WHERE status IN ('open','in_progress','blocked') AND due_date < current_date) d, "
            "count(*) FILTER (WHERE status IN ('open','in_progress','blocked') AND due_date >= current_date "
            "AND due_date < current_date + 7) s FROM actions")
    by = {"severity": {}, "category": {}, "status": {}}
    total = 0
    for r in stats:
        if r["severity"]:
            by["severity"][r["severity"]] = r["count"]
        elif r["category"]:
            by["category"][r["category"]] = r["count"]
        elif r["status"]:
            by["status"][r["status"]] = r["count"]
        else:
            total = r["count"]
    return {
        "generatedAt": iso(now),
        "posture": [{"domain": p["domain"], "level": p["level"], "rationale": p["rationale"], "setBy": p["set_by"],
                     "setAt": iso(p["set_at"]), "etag": f'"{p["version"]}"'} for p in posture],
        "signals": {"windowHours": 24, "total": total, "bySeverity": by["severity"], "byCategory": by["category"],
                    "byStatus": by["status"]},
        "latestBriefing": None if briefing is None else {
            "id": str(briefing["id"]), "title": briefing["title"], "status": briefing["status"],
            "briefingDate": briefing["briefing_date"].isoformat(), "updatedAt": iso(briefing["updated_at"])},
        "actions": {"open": actions["o"], "inProgress": actions["p"], "blocked": actions["b"], "overdue": actions["d"],
                    "dueNext7Days": actions["s"]},
    }


class SignalInput(BaseModel):
    source: str = Field(min_length=1, max_length=100)
    sourceId: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=300)
    summary: str = Field(min_length=1, max_length=4000)
    sourceUrl: str | None = None
    category: Literal["geopolitical", "economic", "security", "technology", "health", "climate", "regulatory", "reputational"]
    severity: Literal["low", "medium", "high", "critical"]
    confidence: float = Field(ge=0, le=1)
    modelVersion: str = Field(min_length=1, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=20)
    region: str | None = None
    publishedAt: dt.datetime


class SignalBatch(BaseModel):
    items: list[SignalInput] = Field(min_length=1, max_length=500)


@app.post("/v1/signals")
async def ingest(batch: SignalBatch, authorization: str | None = Header(None)) -> dict:
    authenticate(authorization)
    results = []
    async with pool.acquire() as conn:
        async with conn.transaction():
            for it in batch.items:
                digest = hashlib.sha256(it.model_dump_json().encode()).hexdigest()
                new_id = await conn.fetchval(
                    "INSERT INTO signals (id, source, source_id, title, summary, source_url, category, severity, confidence, "
                    "model_version, tags, region, published_at, content_hash) VALUES "
                    "(sitrep_uuid_v7(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
                    "ON CONFLICT (source, source_id) DO NOTHING RETURNING id",
                    it.source, it.sourceId, it.title, it.summary, it.sourceUrl, it.category, it.severity, it.confidence,
                    it.modelVersion, it.tags, it.region, it.publishedAt, digest)
                if new_id is not None:
                    results.append({"sourceId": it.sourceId, "source": it.source, "id": str(new_id), "outcome": "created"})
                    continue
                row = await conn.fetchrow(
                    "SELECT id, content_hash FROM signals WHERE source = $1 AND source_id = $2", it.source, it.sourceId)
                results.append({"sourceId": it.sourceId, "source": it.source, "id": str(row["id"]),
                                "outcome": "unchanged" if row["content_hash"] == digest else "conflict"})
    created = sum(r["outcome"] == "created" for r in results)
    unchanged = sum(r["outcome"] == "unchanged" for r in results)
    return {"received": len(results), "created": created, "unchanged": unchanged,
            "conflicts": len(results) - created - unchanged, "results": results}

"""A small simulated legacy application: its tables, and employees submitting requests.

The application knows nothing about DingTalk. It inserts leave requests and expense
claims (each with a receipt, a small PNG made here) with ``status = 'submitted'``; the
capture triggers syncd installed turn each insert into an outbox row in the same
transaction, and syncd writes the outcome back into ``approval_status``, ``instance_id``
and ``decided_at``.

Requests follow a fixed pattern so every run shows the same mix: most are approved by
the simulator's rules, some refused, and a few wait for a person (see ``world.py``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from syncd.db import capture, migrations
from syncd.db.connect import connect
from syncd.db.queries import parse_queries
from syncd.demo.config import CAPTURES

logger = logging.getLogger(__name__)

APPLICANTS = ("u1", "u2", "u3", "u4", "u5", "u6")
# kind and the outcome the demo's rules will give, repeated every 20 requests
PATTERN: tuple[tuple[str, str], ...] = (
    ("leave", "agree"),
    ("expense", "agree"),
    ("leave", "agree"),
    ("expense", "refuse"),
    ("leave", "agree"),
    ("expense", "agree"),
    ("leave", "manual"),
    ("leave", "agree"),
    ("expense", "agree"),
    ("leave", "refuse"),
    ("expense", "agree"),
    ("leave", "agree"),
    ("expense", "agree"),
    ("leave", "agree"),
    ("expense", "manual"),
    ("leave", "agree"),
    ("expense", "agree"),
    ("leave", "refuse"),
    ("expense", "agree"),
    ("expense", "refuse"),
)
LEAVE_DAYS = {"agree": (1, 5), "refuse": (6, 9), "manual": (10, 15)}
EXPENSE_AMOUNT = {"agree": (50, 4800), "refuse": (10001, 30000), "manual": (5001, 10000)}
LEAVE_REASONS = ("家中有事", "外出旅行", "看病复查", "搬家", "陪伴家人")
EXPENSE_ITEMS = {"差旅": "机票和酒店", "餐饮": "客户午餐", "办公用品": "键盘和纸张"}


@cache
def app_queries() -> dict[str, LiteralString]:
    text = resources.files("syncd.demo").joinpath("app.sql").read_text(encoding="utf-8")
    return parse_queries(text)


async def prepare(dsn: str) -> None:
    """syncd's schema, the application's tables, and a capture trigger per kind."""
    await migrations.apply(dsn)
    await create_application(dsn)


async def create_application(dsn: str) -> None:
    """The application's tables and a capture trigger per kind, made by the role of
    ``dsn``, which owns them (it needs the grants of docs/security.md to run capture add,
    unless it is a superuser or the database owner)."""
    async with connect(dsn) as conn:
        await conn.execute(app_queries()["create_demo_tables"])
        for kind, (table, key, when) in CAPTURES.items():
            await capture.install(conn, capture.CaptureSpec(kind, table, key, when))
        await conn.commit()


def receipt_png(number: int, amount: float) -> bytes:
    """A small grey PNG standing for a scanned receipt: a few hundred bytes, different for
    each request (stripes drawn from its number and amount)."""
    width, height = 48, 24
    seed = number * 7919 + round(amount * 100)
    rows = b"".join(
        b"\x00" + bytes(255 - (((x + seed) * (y + 3) + seed) % 5) * 40 for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Request:
    kind: str
    expected: str
    query: str
    params: dict[str, Any]


def make_request(number: int, rng: random.Random, today: date) -> Request:
    """The ``number``-th request of the pattern, with values drawn from ``rng``."""
    kind, expected = PATTERN[number % len(PATTERN)]
    applicant = rng.choice(APPLICANTS)
    if kind == "leave":
        days = rng.randint(*LEAVE_DAYS[expected])
        start = today + timedelta(days=rng.randint(1, 30))
        params: dict[str, Any] = {
            "applicant": applicant,
            "leave_type": rng.choice(("年假", "事假", "病假")),
            "start_date": start,
            "end_date": start + timedelta(days=days - 1),
            "days": days,
            "reason": rng.choice(LEAVE_REASONS),
        }
        return Request(kind, expected, "insert_leave_request", params)
    amount = round(rng.uniform(*EXPENSE_AMOUNT[expected]), 2)
    category = rng.choice(sorted(EXPENSE_ITEMS))
    params = {
        "applicant": applicant,
        "amount": amount,
        "category": category,
        "spent_on": today - timedelta(days=rng.randint(1, 20)),
        "note": f"{category}报销",
        "items": Jsonb([{"name": EXPENSE_ITEMS[category], "amount": amount}]),
        "receipt": receipt_png(number, amount),
        "receipt_name": f"收据-{number + 1}.png",
    }
    return Request(kind, expected, "insert_expense_claim", params)


class LegacyApp:
    """Inserts ``count`` requests at ``rate`` per second; ``inserted`` counts them."""

    def __init__(self, dsn: str, *, count: int, rate: float, seed: int = 7) -> None:
        self.dsn = dsn
        self.count = count
        self.rate = rate
        self.rng = random.Random(seed)
        self.inserted = 0
        self.done = asyncio.Event()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Callable[[Request], Awaitable[Any]]]:
        """A function inserting one request, returning its key, for the run."""
        async with connect(self.dsn, autocommit=True, application_name="demo legacy app") as conn:

            async def insert(request: Request) -> Any:
                cursor = await conn.execute(app_queries()[request.query], request.params)
                row = await cursor.fetchone()
                return row["id"] if row else None

            yield insert

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        today = date.today()
        async with self.session() as insert:
            started = loop.time()
            for number in range(self.count):
                request = make_request(number, self.rng, today)
                key = await insert(request)
                self.inserted += 1
                logger.info(
                    "request submitted",
                    extra={
                        "action": "demo_request",
                        "kind": request.kind,
                        "business_key": key,
                        "expected": request.expected,
                    },
                )
                pause = started + (number + 1) / self.rate - loop.time()
                if pause > 0 and number + 1 < self.count:
                    await asyncio.sleep(pause)
        self.done.set()

"""`chad-memory prices set|list|delete|recompute`: the model price table, and the
argument types for its timestamps and decimal prices."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from chad_memory.cli.console import _say
from chad_memory.cli.database import _prepare_embedded
from chad_memory.schemas import ModelPriceCreate, ModelPriceRecord, plain_decimal
from chad_memory.stores.prices import PriceStore

T = TypeVar("T")


def _run_prices(work: Callable[[PriceStore], Awaitable[T]]) -> T:
    from chad_memory.database import close_db_connections, get_session_factory

    async def runner() -> T:
        try:
            return await work(PriceStore(get_session_factory()))
        finally:
            await close_db_connections()

    _prepare_embedded()
    return asyncio.run(runner())


def _print_prices(records: Sequence[ModelPriceRecord]) -> None:
    print("id\tactor\tprovider\tmodel_pattern\tstarts_at\tinput\tcached_input\tcache_write\toutput")
    for p in records:
        cells = (p.input_mtok, p.cached_input_mtok, p.cache_write_mtok, p.output_mtok)
        shown = "\t".join("" if c is None else plain_decimal(c) for c in cells)
        print(
            f"{p.id}\t{p.actor or '*'}\t{p.provider or '*'}\t{p.model_pattern}\t"
            f"{p.starts_at.isoformat()}\t{shown}"
        )


def cmd_prices_set(args: argparse.Namespace) -> int:
    price = ModelPriceCreate(
        provider=args.provider,
        model_pattern=args.model,
        starts_at=args.starts_at or datetime.now(UTC),
        input_mtok=args.input,
        cached_input_mtok=args.cached_input,
        cache_write_mtok=args.cache_write,
        output_mtok=args.output,
    )
    record = _run_prices(lambda prices: prices.set_price(price, actor=args.actor))
    _say(f"price {record.id} set; stored costs are unchanged (see `prices recompute`)")
    _print_prices([record])
    return 0


def cmd_prices_list(args: argparse.Namespace) -> int:
    _print_prices(_run_prices(lambda prices: prices.list_prices(actor=args.actor)))
    return 0


def cmd_prices_delete(args: argparse.Namespace) -> int:
    _run_prices(lambda prices: prices.delete_price(args.id, actor=args.actor))
    _say(f"deleted price {args.id}; calls it priced keep their cost and price_ref")
    return 0


def cmd_prices_recompute(args: argparse.Namespace) -> int:
    def show(seen: int, changed: int) -> None:
        _say(f"{seen} calls priced again, {changed} costs changed")

    changed = _run_prices(
        lambda prices: prices.recompute(
            since=args.since, until=args.until, actor=args.actor, progress=show
        )
    )
    print(changed)
    return 0


def _timestamp(value: str) -> datetime:
    """ISO 8601 (naive means UTC), or a relative age such as 30d / 12h."""
    if value[-1:] in ("d", "h") and value[:-1].isdigit():
        unit = "days" if value[-1] == "d" else "hours"
        return datetime.now(UTC) - timedelta(**{unit: int(value[:-1])})
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a timestamp or age (30d, 12h): {value!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _price(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not a decimal number: {value!r}") from None

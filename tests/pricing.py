"""What genai-prices itself says a stored call costs: the yardstick for pricing tests."""

from __future__ import annotations

from decimal import Decimal

import genai_prices

from chad_memory.schemas import LLMCallRecord


def builtin_cost(call: LLMCallRecord) -> Decimal:
    """genai-prices' own answer for the call's counts, at the call's time."""
    usage = genai_prices.Usage(
        input_tokens=call.prompt_tokens,
        cache_read_tokens=call.cached_tokens,
        cache_write_tokens=call.cache_write_tokens,
        output_tokens=call.completion_tokens,
    )
    assert call.model is not None
    price = genai_prices.calc_price(
        usage, call.model, provider_id=call.provider, genai_request_timestamp=call.created_at
    )
    return price.total_price

"""The Meta mapper and error table, including hypothesis runs over sandbox payloads."""

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.platforms.errors import (
    AuthError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from app.platforms.facebook.mapping import (
    OrderMappingError,
    classify_response,
    display_price,
    map_order,
    map_products,
    normalized_status,
    usage_retry_after,
)
from app.platforms.types import OrderStatus
from app.sandbox.facebook import FacebookSandbox, render_order, render_products
from app.sandbox.seed import SeededShop

EXPECTED_FROM_SEED = {
    "unpaid": OrderStatus.UNPAID,
    "pending": OrderStatus.PENDING,
    "ready_to_ship": OrderStatus.PENDING,
    "cancelling": OrderStatus.PENDING,
    "shipped": OrderStatus.COMPLETED,
    "delivered": OrderStatus.COMPLETED,
    "completed": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
    "returned": OrderStatus.RETURNED,
    "failed": OrderStatus.RETURNED,
}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("FB_PROCESSING", OrderStatus.UNPAID),
        ("CREATED", OrderStatus.PENDING),
        ("IN_PROGRESS", OrderStatus.PENDING),
        ("COMPLETED", OrderStatus.COMPLETED),
        ("SHIPPED", OrderStatus.SHIPPED),
        ("CANCELLED", OrderStatus.CANCELLED),
        ("REFUNDED", OrderStatus.RETURNED),
        ("SOMETHING_NEW", OrderStatus.UNKNOWN),
    ],
)
def test_every_meta_state_has_a_normalized_status(state: str, expected: OrderStatus) -> None:
    assert normalized_status(state, fully_cancelled=False, refunded=False) is expected


def test_cancellations_and_refunds_refine_only_completed_orders() -> None:
    assert normalized_status("COMPLETED", fully_cancelled=True, refunded=False) is (
        OrderStatus.CANCELLED
    )
    assert normalized_status("COMPLETED", fully_cancelled=False, refunded=True) is (
        OrderStatus.RETURNED
    )
    assert normalized_status("IN_PROGRESS", fully_cancelled=True, refunded=True) is (
        OrderStatus.PENDING
    )


def meta_order() -> dict[str, Any]:
    return {
        "id": "335211597203390",
        "order_status": {"state": "CREATED"},
        "created": "2019-01-14T19:17:31+00:00",
        "last_updated": "2019-01-14T19:47:35+0000",
        "items": [
            {
                "id": "2082596341811586",
                "product_id": "1213131231",
                "retailer_id": "external_product_1234",
                "product_name": "Mug",
                "quantity": 2,
                "price_per_unit": {"amount": "20.00", "currency": "USD"},
            }
        ],
        "selected_shipping_option": {
            "name": "Standard",
            "price": {"amount": "10.00", "currency": "USD"},
        },
        "shipping_address": {
            "name": "ABC company",
            "street1": "123 Main St",
            "street2": "Unit 200",
            "city": "Boston",
            "state": "MA",
            "postal_code": "02110",
            "country": "US",
        },
        "estimated_payment_details": {
            "subtotal": {
                "items": {"amount": "40.00", "currency": "USD"},
                "shipping": {"amount": "10.00", "currency": "USD"},
            },
            "tax": {"amount": "0.45", "currency": "USD"},
            "total_amount": {"amount": "45.45", "currency": "USD"},
            "tax_remitted": True,
        },
        "buyer_details": {
            "name": "John Doe",
            "email": "johndoe@example.com",
            "email_remarketing_option": False,
        },
    }


def test_maps_a_documented_order_shape_exactly() -> None:
    mapped = map_order(meta_order())
    assert mapped.external_order_id == "335211597203390"
    assert mapped.raw_status == "CREATED" and mapped.status is OrderStatus.PENDING
    assert mapped.currency == "USD"
    assert (mapped.subtotal, mapped.shipping_fee, mapped.total) == (
        Decimal("40.00"),
        Decimal("10.00"),
        Decimal("45.45"),
    )
    assert mapped.discount == Decimal("5.00")  # 40 + 10 + 0.45 - 45.45
    assert mapped.created_at.isoformat() == "2019-01-14T19:17:31+00:00"
    assert mapped.updated_at.isoformat() == "2019-01-14T19:47:35+00:00"
    item = mapped.items[0]
    assert (item.sku, item.quantity, item.unit_price, item.name) == (
        "external_product_1234",
        2,
        Decimal("20.00"),
        "Mug",
    )
    assert mapped.buyer_name == "John Doe" and mapped.buyer_email == "johndoe@example.com"
    assert mapped.shipping_address is not None
    assert mapped.shipping_address.city == "Boston"
    assert mapped.shipping_address.full_address == "123 Main St, Unit 200, Boston, MA, 02110, US"
    assert mapped.is_cod is False and mapped.raw["id"] == "335211597203390"


def test_falls_back_to_item_sums_and_shipping_option_without_payment_details() -> None:
    raw = meta_order()
    del raw["estimated_payment_details"]
    mapped = map_order(raw)
    assert (mapped.subtotal, mapped.shipping_fee, mapped.total, mapped.discount) == (
        Decimal("40.00"),
        Decimal("10.00"),
        Decimal("50.00"),
        Decimal("0"),
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o.pop("id"),
        lambda o: o.pop("created"),
        lambda o: o["items"][0].update(quantity=None),
        lambda o: o["items"][0].update(price_per_unit={"amount": "NaN", "currency": "USD"}),
        lambda o: o["estimated_payment_details"]["total_amount"].update(amount="1,0"),
        lambda o: o.update(created="yesterday"),
    ],
)
def test_unreadable_payloads_raise_order_mapping_error(change: Any) -> None:
    raw = meta_order()
    change(raw)
    with pytest.raises(OrderMappingError):
        map_order(raw)


# --- error table -------------------------------------------------------------------------------


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.Response(status, content=content.encode(), headers=headers)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, 4, RateLimitedError),
        (400, 17, RateLimitedError),
        (400, 32, RateLimitedError),
        (400, 613, RateLimitedError),
        (400, 80001, RateLimitedError),
        (400, 80004, RateLimitedError),
        (400, 190, AuthError),
        (400, 102, AuthError),
        (403, 10, PermanentError),
        (403, 200, PermanentError),
        (403, 294, PermanentError),
        (500, 1, TransientError),
        (500, 2, TransientError),
        (400, 100, PermanentError),
    ],
)
def test_error_codes_map_to_failure_classes(status: int, code: int, error: type) -> None:
    with pytest.raises(error) as caught:
        classify_response(response(status, {"error": {"code": code, "message": "m"}}))
    assert type(caught.value) is error


def test_http_statuses_and_is_transient_flag() -> None:
    with pytest.raises(RateLimitedError):
        classify_response(response(429, "too many"))
    with pytest.raises(TransientError):
        classify_response(response(502, "<html>"))
    with pytest.raises(TransientError):
        classify_response(response(400, {"error": {"code": 100, "is_transient": True}}))
    with pytest.raises(PermanentError):
        classify_response(response(404, "not found"))
    with pytest.raises(TransientError):
        classify_response(response(200, "{oops"))
    assert classify_response(response(200, {"data": []})) == {"data": []}


def test_usage_headers_give_seconds_to_wait() -> None:
    buc = json.dumps(
        {
            "123": [
                {"type": "pages", "estimated_time_to_regain_access": 0},
                {"type": "pages", "estimated_time_to_regain_access": 4},
            ]
        }
    )
    assert usage_retry_after(httpx.Headers({"X-Business-Use-Case-Usage": buc})) == 240
    app = json.dumps({"call_count": 100, "estimated_time_to_regain_access": 1})
    assert usage_retry_after(httpx.Headers({"X-App-Usage": app})) == 60
    zero = json.dumps({"123": [{"estimated_time_to_regain_access": 0}]})
    assert usage_retry_after(httpx.Headers({"X-Business-Use-Case-Usage": zero})) is None
    assert usage_retry_after(httpx.Headers({"X-App-Usage": "garbage"})) is None
    err = response(
        400, {"error": {"code": 32}}, {"X-Business-Use-Case-Usage": buc, "Retry-After": "30"}
    )
    with pytest.raises(RateLimitedError) as caught:
        classify_response(err)
    assert caught.value.retry_after == 240


# --- products ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("฿1,234.50", "1234.50"),
        ("THB1,234.50", "1234.50"),
        ("1234.5", "1234.5"),
        ("$0.99", "0.99"),
        ("1.234,50 €", "1234.50"),
        ("", None),
        ("free", None),
    ],
)
def test_display_prices_parse_exactly(text: str, value: str | None) -> None:
    assert display_price(text) == (Decimal(value) if value else None)


def test_catalog_items_group_into_products_with_variations() -> None:
    state = FacebookSandbox()
    page = state.add_page(seed="p", product_count=3)
    products = map_products(render_products(page))
    assert [p.name for p in products] == [p.name for p in page.shop.products]
    for product, seeded in zip(products, page.shop.products, strict=True):
        assert [v.sku for v in product.variations] == [v.sku for v in seeded.variations]
        assert [v.name for v in product.variations] == [v.name for v in seeded.variations]
        assert [v.price for v in product.variations] == [v.price for v in seeded.variations]
        assert [v.stock for v in product.variations] == [v.stock for v in seeded.variations]


# --- hypothesis --------------------------------------------------------------------------------

_STATE = FacebookSandbox()
_PAGE = _STATE.add_page(seed="hyp")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.text(min_size=1, max_size=12), index=st.integers(0, 5000))
def test_mapper_keeps_every_amount_of_any_sandbox_order(seed: str, index: int) -> None:
    shop = SeededShop(seed=seed, order_count=index + 1)
    seeded = shop.order(index)
    raw = json.loads(json.dumps(render_order(_PAGE, seeded)))  # exactly what goes on the wire
    mapped = map_order(raw)
    gross = sum((i.unit_price * i.quantity for i in seeded.items), Decimal("0"))
    line_discounts = sum((i.discount for i in seeded.items), Decimal("0"))
    assert mapped.total == seeded.total
    assert mapped.subtotal == gross
    assert mapped.shipping_fee == seeded.shipping_fee
    assert mapped.discount == line_discounts + seeded.voucher
    assert mapped.currency == "THB"
    assert mapped.created_at == seeded.created_at and mapped.updated_at == seeded.updated_at
    assert [(i.sku, i.quantity, i.unit_price) for i in mapped.items] == [
        (i.sku, i.quantity, i.unit_price) for i in seeded.items
    ]
    assert all(isinstance(i.unit_price, Decimal) for i in mapped.items)
    expected = EXPECTED_FROM_SEED[seeded.status]
    fully_cancelled = expected is OrderStatus.CANCELLED
    refunded = expected is OrderStatus.RETURNED
    assert map_order(raw, fully_cancelled=fully_cancelled, refunded=refunded).status is expected


amounts = st.decimals(
    min_value=Decimal("-1e9"),
    max_value=Decimal("1e9"),
    places=4,
    allow_nan=False,
    allow_infinity=False,
)


@settings(max_examples=200, deadline=None)
@given(
    unit=amounts,
    shipping=amounts,
    total=amounts,
    quantity=st.integers(0, 10**6),
    as_number=st.booleans(),
)
def test_amounts_keep_decimal_precision(
    unit: Decimal, shipping: Decimal, total: Decimal, quantity: int, as_number: bool
) -> None:
    def amount(value: Decimal) -> Any:
        return {"amount": float(value) if as_number else str(value), "currency": "THB"}

    raw = meta_order()
    raw["items"][0].update(quantity=quantity, price_per_unit=amount(unit))
    raw["estimated_payment_details"] = {
        "subtotal": {"shipping": amount(shipping)},
        "total_amount": amount(total),
    }
    mapped = map_order(raw)

    def expect(value: Decimal) -> Decimal:
        # What the wire carried, rounded half up to THB's two minor units.
        sent = Decimal(str(float(value))) if as_number else value
        return sent.quantize(Decimal("0.01"), ROUND_HALF_UP)

    assert mapped.items[0].unit_price == expect(unit)
    assert mapped.subtotal == expect(unit) * quantity
    assert mapped.shipping_fee == expect(shipping)
    assert mapped.total == expect(total)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
order_keys = st.sampled_from(
    [
        "id",
        "order_status",
        "created",
        "last_updated",
        "items",
        "estimated_payment_details",
        "buyer_details",
        "shipping_address",
        "selected_shipping_option",
    ]
)


@settings(max_examples=300, deadline=None)
@given(patch=st.dictionaries(order_keys, json_values, max_size=5))
def test_mapper_only_ever_raises_order_mapping_error(patch: dict[str, Any]) -> None:
    raw = {**meta_order(), **patch}
    try:
        mapped = map_order(raw)
    except OrderMappingError:
        return
    assert isinstance(mapped.total, Decimal) and mapped.external_order_id


# --- money in minor units, structured address ------------------------------------------------

MINOR_UNITS = {"THB": 2, "MYR": 2, "SGD": 2, "PHP": 2, "USD": 2, "VND": 0, "IDR": 0, "ABC": 2}


def amounts_of(order: Any) -> list[Decimal]:
    items = [amount for i in order.items for amount in (i.unit_price, i.discount)]
    return [order.subtotal, order.shipping_fee, order.discount, order.total, *items]


def places(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.text(min_size=1, max_size=8),
    index=st.integers(0, 500),
    currency=st.sampled_from(sorted(MINOR_UNITS)),
)
def test_every_amount_carries_exactly_its_currency_minor_units(
    seed: str, index: int, currency: str
) -> None:
    seeded = SeededShop(seed=seed, order_count=index + 1).order(index)
    seeded.currency = currency
    mapped = map_order(json.loads(json.dumps(render_order(_PAGE, seeded))))
    assert mapped.currency == currency
    amounts = amounts_of(mapped)
    assert [places(a) for a in amounts] == [MINOR_UNITS[currency]] * len(amounts)


def test_meta_amounts_render_in_minor_units_whatever_digits_they_carry() -> None:
    raw = meta_order()
    raw["items"][0]["price_per_unit"] = {"amount": "20.4", "currency": "USD"}
    raw["estimated_payment_details"] = {"total_amount": {"amount": 50.8, "currency": "USD"}}
    mapped = map_order(raw)
    assert [str(a) for a in (mapped.items[0].unit_price, mapped.subtotal, mapped.total)] == [
        "20.40",
        "40.80",
        "50.80",
    ]
    assert (str(mapped.shipping_fee), str(mapped.discount)) == ("10.00", "0.00")
    for amount in (raw["items"][0]["price_per_unit"], raw["selected_shipping_option"]["price"]):
        amount.update(currency="VND")
    raw["items"][0]["price_per_unit"]["amount"] = "38000.00"
    raw["estimated_payment_details"] = {"total_amount": {"amount": "86000.50", "currency": "VND"}}
    mapped = map_order(raw)
    assert mapped.currency == "VND"
    assert [str(a) for a in (mapped.items[0].unit_price, mapped.subtotal, mapped.total)] == [
        "38000",
        "76000",
        "86001",
    ]
    assert (str(mapped.shipping_fee), str(mapped.discount)) == ("10", "0")


def test_sandbox_address_maps_to_its_structured_parts() -> None:
    shop = SeededShop(seed="address", order_count=30)
    for index in range(shop.order_count):
        seeded = shop.order(index)
        address = map_order(json.loads(json.dumps(render_order(_PAGE, seeded)))).shipping_address
        assert address is not None
        wanted = seeded.address
        assert (address.name, address.line1, address.city, address.state) == (
            wanted.name,
            wanted.line1,
            wanted.district,
            wanted.province,
        )
        assert (address.postal_code, address.country) == (wanted.postal_code, wanted.country)
        assert address.line2 is None  # Meta sends an empty street2

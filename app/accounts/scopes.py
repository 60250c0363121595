"""What an API key may do: the scope each authenticated route needs, in one table.

A route missing here refuses API keys (a login or identity-provider token still works), so a
new route is closed to keys until someone decides its scope: add ONE line per route, keyed by
its method and path template exactly as declared (tests/accounts/test_scopes.py checks that
every authenticated route has a line)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Scope(StrEnum):
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    INVENTORY_WRITE = "inventory:write"
    CONNECTIONS_MANAGE = "connections:manage"


# The route accepts login and identity-provider tokens only, never an API key.
JWT_ONLY: Final = "jwt-only"

_M = "/api/marketplace"
_READ, _WRITE = Scope.ORDERS_READ, Scope.ORDERS_WRITE
_STOCK, _CONNECTIONS = Scope.INVENTORY_WRITE, Scope.CONNECTIONS_MANAGE

ROUTE_SCOPES: Final[dict[tuple[str, str], Scope | str]] = {
    # connections: reading them (credentials masked) is part of reading orders
    ("GET", f"{_M}/connections"): _READ,
    ("GET", f"{_M}/connections/{{connectionId}}"): _READ,
    ("POST", f"{_M}/connections"): _CONNECTIONS,
    ("PATCH", f"{_M}/connections/{{connectionId}}"): _CONNECTIONS,
    ("DELETE", f"{_M}/connections/{{connectionId}}"): _CONNECTIONS,
    ("POST", f"{_M}/connect/{{platformCode}}/start"): _CONNECTIONS,
    ("POST", f"{_M}/connect/complete"): _CONNECTIONS,
    # syncs and the marketplace push log are connection plumbing
    ("POST", f"{_M}/sync-orders"): _CONNECTIONS,
    ("POST", f"{_M}/sync-products"): _CONNECTIONS,
    ("POST", f"{_M}/sync-reviews"): _CONNECTIONS,
    ("GET", f"{_M}/sync-logs"): _READ,
    ("GET", f"{_M}/sync-logs/{{syncLogId}}"): _READ,
    ("GET", f"{_M}/webhooks"): _CONNECTIONS,
    ("POST", f"{_M}/webhooks/{{webhookId}}/retry"): _CONNECTIONS,
    # orders and what is read from them
    ("GET", f"{_M}/orders"): _READ,
    ("GET", f"{_M}/orders/{{orderId}}"): _READ,
    ("GET", f"{_M}/orders/export"): _READ,
    ("GET", f"{_M}/buyers/export"): _READ,
    ("GET", f"{_M}/customers"): _READ,
    ("GET", f"{_M}/customers/export"): _READ,
    ("GET", f"{_M}/customers/{{customerId}}"): _READ,
    ("GET", f"{_M}/customers/{{customerId}}/export"): _READ,
    ("GET", f"{_M}/products"): _READ,
    ("GET", f"{_M}/reviews"): _READ,
    ("GET", f"{_M}/analytics/summary"): _READ,
    ("GET", f"{_M}/analytics/timeseries"): _READ,
    ("GET", f"{_M}/analytics/top-products"): _READ,
    ("GET", f"{_M}/inventory"): _READ,
    ("GET", f"{_M}/inventory/export"): _READ,
    ("GET", f"{_M}/inventory/{{sku}}"): _READ,
    ("GET", f"{_M}/inventory/{{sku}}/ledger"): _READ,
    ("GET", f"{_M}/live-sessions"): _READ,
    ("GET", f"{_M}/live-sessions/{{session_id}}"): _READ,
    ("GET", f"{_M}/live-sessions/{{session_id}}/comments"): _READ,
    # order changes: live sessions take orders, their orders are paid, cancelled, shipped
    ("POST", f"{_M}/live-sessions"): _WRITE,
    ("PATCH", f"{_M}/live-sessions/{{session_id}}"): _WRITE,
    ("POST", f"{_M}/orders/{{order_id}}/mark-paid"): _WRITE,
    ("POST", f"{_M}/orders/{{order_id}}/cancel"): _WRITE,
    ("POST", f"{_M}/orders/bulk"): _WRITE,
    ("DELETE", f"{_M}/customers/{{customerId}}/buyer-data"): _WRITE,
    ("POST", f"{_M}/reviews/{{review_id}}/reply"): _WRITE,
    # fulfillment: what a shipment needs is a read; shipping, labels and cancelling act
    ("GET", f"{_M}/fulfillments"): _READ,
    ("GET", f"{_M}/orders/{{orderId}}/shipping-options"): _READ,
    ("GET", f"{_M}/orders/{{orderId}}/cancel-reasons"): _READ,
    ("GET", f"{_M}/orders/{{orderId}}/label"): _WRITE,
    ("POST", f"{_M}/labels"): _WRITE,
    ("POST", f"{_M}/fulfillments"): _WRITE,
    ("POST", f"{_M}/orders/{{orderId}}/ship"): _WRITE,
    ("POST", f"{_M}/orders/{{orderId}}/cancel"): _WRITE,
    ("POST", f"{_M}/orders/{{orderId}}/cancellation-request"): _WRITE,
    # stock
    ("PUT", f"{_M}/inventory/{{sku}}"): _STOCK,
    ("POST", f"{_M}/inventory/bulk"): _STOCK,
    ("PUT", f"{_M}/sku-mappings"): _STOCK,
    # a key never manages keys: a leaked one could otherwise mint more
    ("GET", f"{_M}/api-keys"): JWT_ONLY,
    ("POST", f"{_M}/api-keys"): JWT_ONLY,
    ("DELETE", f"{_M}/api-keys/{{apiKeyId}}"): JWT_ONLY,
}


def required_scope(method: str, path_template: str) -> Scope | None:
    """The scope an API key needs for this route, or None when keys are refused here."""
    needed = ROUTE_SCOPES.get((method.upper(), path_template))
    return needed if isinstance(needed, Scope) else None

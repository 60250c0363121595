from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.accounts.scopes import JWT_ONLY, ROUTE_SCOPES, Scope, required_scope
from app.auth import current_user
from app.main import create_app
from tests.conftest import make_settings


def _authenticated(dependant: Dependant) -> bool:
    return any(d.call is current_user or _authenticated(d) for d in dependant.dependencies)


def _authenticated_routes() -> set[tuple[str, str]]:
    app = create_app(make_settings("postgresql://unused/db", "redis://unused"))
    routes = set()
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and _authenticated(route.dependant):
            routes.update((method, route.path) for method in route.methods)
    return routes


def test_every_authenticated_route_has_a_line_in_the_scope_table() -> None:
    routes = _authenticated_routes()
    assert len(routes) > 30
    missing = sorted(routes - ROUTE_SCOPES.keys())
    assert not missing, (
        f"add these routes to ROUTE_SCOPES in app/accounts/scopes.py (a Scope, or JWT_ONLY): "
        f"{missing}"
    )


def test_api_key_management_takes_no_api_key() -> None:
    for method in ("GET", "POST"):
        assert ROUTE_SCOPES[(method, "/api/marketplace/api-keys")] == JWT_ONLY
        assert required_scope(method, "/api/marketplace/api-keys") is None
    assert required_scope("GET", "/api/marketplace/not-a-route") is None


def test_the_scopes_split_reads_writes_stock_and_connections() -> None:
    m = "/api/marketplace"
    assert required_scope("GET", f"{m}/orders") == Scope.ORDERS_READ
    assert required_scope("GET", f"{m}/analytics/summary") == Scope.ORDERS_READ
    assert required_scope("POST", f"{m}/orders/{{order_id}}/mark-paid") == Scope.ORDERS_WRITE
    assert required_scope("PUT", f"{m}/inventory/{{sku}}") == Scope.INVENTORY_WRITE
    assert required_scope("PUT", f"{m}/sku-mappings") == Scope.INVENTORY_WRITE
    assert required_scope("POST", f"{m}/connections") == Scope.CONNECTIONS_MANAGE
    assert required_scope("POST", f"{m}/sync-orders") == Scope.CONNECTIONS_MANAGE

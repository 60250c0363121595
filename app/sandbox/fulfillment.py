"""What the three sandboxes share for fulfillment: a book of packages per seeded order (split,
shipped, tracking number, label), the airway-bill PDF, and placing a new order on a shop.

Tracking numbers are empty for the first `tracking_hidden_reads` reads after a ship, as
Shopee's are until the carrier assigns one. Labels are ready after `label_processing_polls`
result polls. Both are per book, so a test or the demo can change them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from app.sandbox.seed import SeededShop, SeedOrder, SeedVariation

LOGISTICS_CHANNEL_ID = 70021  # one channel and warehouse for every sandbox package


@dataclass
class Package:
    number: str
    line_ids: list[int]
    shipped: bool = False
    method: str | None = None
    tracking_number: str | None = None
    tracking_reads: int = 0
    label_polls: int = -1  # -1: no document created yet
    cancelled: bool = False


@dataclass
class OrderBook:
    packages: list[Package]
    idempotency: dict[str, str] = field(default_factory=dict)  # Meta: key -> shipment id


@dataclass
class FulfillmentBook:
    tracking_hidden_reads: int = 1
    label_processing_polls: int = 0
    # Per seeded order id; an order not here has one unshipped package.
    orders: dict[int, OrderBook] = field(default_factory=dict)

    def of(self, order: SeedOrder) -> OrderBook:
        book = self.orders.get(order.order_id)
        if book is None:
            lines = [item.line_id for item in order.items]
            book = self.orders[order.order_id] = OrderBook([Package(f"OFG{order.order_id}", lines)])
        return book

    def split(self, order: SeedOrder, parts: int) -> list[Package]:
        """Split the order's lines over `parts` packages (at least one line each)."""
        lines = [item.line_id for item in order.items]
        parts = max(1, min(parts, len(lines)))
        book = self.of(order)
        book.packages = [
            Package(f"OFG{order.order_id}-{n + 1}", lines[n::parts]) for n in range(parts)
        ]
        return book.packages

    def package(self, order: SeedOrder, number: str) -> Package | None:
        return next((p for p in self.of(order).packages if p.number == number), None)

    def is_split(self, order: SeedOrder) -> bool:
        return len(self.of(order).packages) > 1

    def ship(self, order: SeedOrder, package: Package, method: str, tracking: str | None) -> None:
        package.shipped = True
        package.method = method
        package.tracking_number = tracking or f"TH{order.order_id:010d}{len(package.number) % 10}"
        # A number the seller typed in is known at once; a carrier's takes a moment.
        package.tracking_reads = self.tracking_hidden_reads if tracking is None else 0

    def read_tracking(self, package: Package) -> str | None:
        if not package.shipped:
            return None
        if package.tracking_reads > 0:
            package.tracking_reads -= 1
            return None
        return package.tracking_number

    def all_shipped(self, order: SeedOrder) -> bool:
        return all(p.shipped for p in self.of(order).packages)


def order_id_of_package(number: str) -> int | None:
    """`OFG2400000003` or `OFG2400000003-2` -> 2400000003."""
    if not number.startswith("OFG"):
        return None
    head = number[3:].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def book_of(owner: object) -> FulfillmentBook:
    """The book kept on a sandbox shop object (created on first use)."""
    book = getattr(owner, "_fulfillment_book", None)
    if not isinstance(book, FulfillmentBook):
        book = FulfillmentBook()
        owner._fulfillment_book = book  # type: ignore[attr-defined]
    return book


def place_orders(
    shop: SeededShop, count: int, *, sku: str | None = None, quantity: int = 1, lines: int = 1
) -> list[SeedOrder]:
    """`count` new paid orders (status pending) placed now; stock falls as on the platform."""
    if not shop.products:
        raise KeyError("the shop has no products")
    placed: list[SeedOrder] = []
    variations = [v for p in shop.products for v in p.variations]
    for n in range(count):
        chosen = sku or variations[(shop.order_count + n) % len(variations)].sku
        order = shop.place_order(chosen, quantity, index_seed=n)
        if lines > 1:
            order = _add_lines(shop, order, lines, variations)
        placed.append(order)
    return placed


def _add_lines(
    shop: SeededShop, order: SeedOrder, lines: int, variations: list[SeedVariation]
) -> SeedOrder:
    extra = []
    for n in range(1, lines):
        variation = variations[(order.index + n) % len(variations)]
        found = shop.variation_by_sku(variation.sku)
        assert found is not None
        product, _ = found
        extra.append(
            replace(
                order.items[0],
                line_id=order.items[0].line_id + n,
                product_id=product.product_id,
                variation_id=variation.variation_id,
                sku=variation.sku,
                name=product.name,
                variation=variation.name,
                unit_price=variation.price,
            )
        )
    changed = replace(order, items=[*order.items, *extra])
    shop._overrides[order.index] = changed
    return changed


def minimal_pdf(lines: list[str], *, width: int = 298, height: int = 420) -> bytes:
    """A small valid one-page PDF (A6 by default, in points) showing `lines` in Helvetica."""
    text = " ".join(
        f"({_pdf_text(line)}) Tj 0 -16 Td" for line in [*lines, datetime.now(UTC).isoformat()]
    )
    stream = f"BT /F1 11 Tf 20 {height - 40} Td {text} ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
            "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
        ).encode(),
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def _pdf_text(value: str) -> str:
    ascii_only = value.encode("ascii", "replace").decode()
    return ascii_only.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def label_for(platform: str, order_label: str, package: str, tracking: str | None) -> bytes:
    return minimal_pdf(
        [
            f"{platform} airway bill (sandbox)",
            f"Order {order_label}",
            f"Package {package}",
            f"Tracking {tracking or '-'}",
        ]
    )

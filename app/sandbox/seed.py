"""A deterministic seeded shop: the same seed gives the same orders and products on every run,
for any number of orders over any date range. Each platform's sandbox renders these
platform-neutral records into its own wire format."""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

# Neutral lifecycle states; each sandbox maps them to its platform's raw statuses.
STATUSES = (
    "unpaid",
    "pending",
    "ready_to_ship",
    "shipped",
    "delivered",
    "completed",
    "cancelling",
    "cancelled",
    "returned",
    "failed",
)
_STATUS_WEIGHTS = (6, 10, 10, 10, 8, 40, 2, 8, 4, 2)

_FIRST_NAMES = (
    "สมชาย",
    "สมหญิง",
    "ประเสริฐ",
    "วิไล",
    "อนุชา",
    "กาญจนา",
    "ธนากร",
    "พรทิพย์",
    "สุริยา",
    "นภา",
    "Somchai",
    "Siriporn",
    "Anan",
    "Kanya",
    "Niran",
    "Ploy",
    "Krit",
    "Malee",
)
_LAST_NAMES = (
    "ใจดี",
    "ศรีสุข",
    "วงศ์ใหญ่",
    "บุญมา",
    "แสงทอง",
    "รัตนพันธ์",
    "Chaiyaporn",
    "Srisuk",
    "Thongdee",
    "Wattana",
    "Boonmee",
    "Kittisak",
)
_PLACES = (
    ("เขตบางรัก", "กรุงเทพมหานคร", "10500"),
    ("เขตจตุจักร", "กรุงเทพมหานคร", "10900"),
    ("อำเภอเมืองเชียงใหม่", "เชียงใหม่", "50000"),
    ("อำเภอหาดใหญ่", "สงขลา", "90110"),
    ("อำเภอเมืองขอนแก่น", "ขอนแก่น", "40000"),
    ("อำเภอบางละมุง", "ชลบุรี", "20150"),
    ("อำเภอเมืองภูเก็ต", "ภูเก็ต", "83000"),
    ("อำเภอปากเกร็ด", "นนทบุรี", "11120"),
)
_STREETS = ("ถนนสุขุมวิท", "ถนนพหลโยธิน", "ถนนนิมมานเหมินท์", "ถนนเพชรเกษม", "ซอยลาดพร้าว 101")
_PRODUCTS = (
    ("เสื้อยืดคอกลม", ("ขาว/M", "ขาว/L", "ดำ/M", "ดำ/L")),
    ("กางเกงยีนส์", ("28", "30", "32")),
    ("ครีมกันแดด SPF50", ("50ml", "100ml")),
    ("หูฟังบลูทูธ", ("ดำ", "ขาว")),
    ("เคสโทรศัพท์", ("iPhone 15", "Galaxy S24", "Redmi Note 13")),
    ("กระเป๋าผ้า", ("ลายช้าง", "ลายดอกไม้")),
    ("ชาไทยผงปรุงสำเร็จ", ("500g", "1kg")),
    ("Rice Cooker 1.8L", ("Standard",)),
    ("น้ำหอมปรับอากาศ", ("ลาเวนเดอร์", "มะลิ", "ตะไคร้")),
    ("รองเท้าแตะ", ("40", "41", "42", "43")),
)
_PAYMENT_METHODS = ("COD", "CREDIT_CARD", "BANK_TRANSFER", "SHOPEEPAY", "PROMPTPAY")


@dataclass(slots=True)
class SeedVariation:
    variation_id: int
    sku: str
    name: str
    price: Decimal
    stock: int


@dataclass(slots=True)
class SeedProduct:
    product_id: int
    name: str
    variations: list[SeedVariation]
    updated_at: datetime


@dataclass(slots=True)
class SeedItem:
    line_id: int
    product_id: int
    variation_id: int
    sku: str
    name: str
    variation: str
    quantity: int
    unit_price: Decimal  # before discount
    discount: Decimal  # per line, total (not per unit)


@dataclass(slots=True)
class SeedAddress:
    name: str
    phone: str
    line1: str
    district: str
    province: str
    postal_code: str
    country: str = "TH"


@dataclass(slots=True)
class SeedOrder:
    index: int
    order_id: int  # numeric, unique per shop; sandboxes format it their own way
    status: str  # one of STATUSES
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    buyer_first_name: str
    buyer_last_name: str
    buyer_phone: str
    buyer_email: str
    address: SeedAddress
    items: list[SeedItem]
    shipping_fee: Decimal
    voucher: Decimal  # order-level discount
    payment_method: str
    is_cod: bool
    currency: str = "THB"
    version: int = 0  # bumped by every change the sandbox applies

    @property
    def subtotal(self) -> Decimal:
        return sum((i.unit_price * i.quantity - i.discount for i in self.items), Decimal("0"))

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.shipping_fee - self.voucher


def _rng(seed: str, *parts: object) -> random.Random:
    digest = hashlib.blake2b(f"{seed}|{'|'.join(map(str, parts))}".encode(), digest_size=8)
    return random.Random(int.from_bytes(digest.digest(), "big"))


@dataclass
class SeededShop:
    """`order_count` orders created evenly at random over [start, end). Changes made with
    `touch` / `set_status` are kept in memory on top of the generated state."""

    seed: str = "shop"
    order_count: int = 0
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(days=60))
    end: datetime = field(default_factory=lambda: datetime.now(UTC))
    product_count: int = 20
    # Generating an order is the sandboxes' main cost and a sync reads each order twice in a
    # row (list page, then detail), so recent ones are remembered.
    cache_size: int = 20_000
    _generated: dict[int, SeedOrder] = field(default_factory=dict, repr=False)
    _overrides: dict[int, SeedOrder] = field(default_factory=dict, repr=False)
    _by_update: list[tuple[datetime, int]] | None = field(default=None, repr=False)
    _products: list[SeedProduct] | None = field(default=None, repr=False)
    # SKUs a running campaign holds: each sandbox refuses stock pushes to them in its words.
    campaign_locked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Marketplaces speak in whole seconds; so does the seeded shop.
        self.start = self.start.astimezone(UTC).replace(microsecond=0)
        self.end = self.end.astimezone(UTC).replace(microsecond=0)

    # --- products ------------------------------------------------------------------------

    @property
    def products(self) -> list[SeedProduct]:
        if self._products is None:
            self._products = [self._make_product(i) for i in range(self.product_count)]
        return self._products

    def _make_product(self, index: int) -> SeedProduct:
        rng = _rng(self.seed, "product", index)
        name, variations = _PRODUCTS[index % len(_PRODUCTS)]
        product_id = 100_000 + index
        base_price = Decimal(rng.randrange(59, 2990)) + Decimal(rng.choice(("0", "0.50", "0.99")))
        return SeedProduct(
            product_id=product_id,
            name=f"{name} #{index + 1}",
            variations=[
                SeedVariation(
                    variation_id=product_id * 10 + v,
                    sku=f"SKU-{index + 1:04d}-{v + 1}",
                    name=variation,
                    price=base_price + Decimal(v * 20),
                    stock=rng.randrange(0, 500),
                )
                for v, variation in enumerate(variations)
            ],
            updated_at=self.start,
        )

    def variation_by_sku(self, sku: str) -> tuple[SeedProduct, SeedVariation] | None:
        for product in self.products:
            for variation in product.variations:
                if variation.sku == sku:
                    return product, variation
        return None

    # --- orders --------------------------------------------------------------------------

    def order_id(self, index: int) -> int:
        return 2_400_000_000 + index * 7 + 3

    def index_of(self, order_id: int) -> int | None:
        index, rest = divmod(order_id - 2_400_000_000 - 3, 7)
        return index if rest == 0 and 0 <= index < self.order_count else None

    def order(self, index: int) -> SeedOrder:
        override = self._overrides.get(index)
        if override is not None:
            return override
        order = self._generated.get(index)
        if order is None:
            if len(self._generated) >= self.cache_size:
                self._generated.clear()
            order = self._generated[index] = self._generate(index)
        return order

    def get(self, order_id: int) -> SeedOrder | None:
        index = self.index_of(order_id)
        return None if index is None else self.order(index)

    def _generate(self, index: int) -> SeedOrder:
        rng = _rng(self.seed, "order", index)
        span = (self.end - self.start).total_seconds()
        created = self.start + timedelta(
            seconds=int(span * (index + rng.random()) / max(1, self.order_count))
        )
        status = rng.choices(STATUSES, weights=_STATUS_WEIGHTS)[0]
        age = max(0.0, (self.end - created).total_seconds() - 1)
        updated = created + timedelta(seconds=int(min(age, rng.uniform(0, 5 * 86400))))
        payment = rng.choice(_PAYMENT_METHODS)
        is_cod = payment == "COD"
        paid = (
            None
            if status == "unpaid" or is_cod
            else created + timedelta(minutes=rng.randrange(1, 60))
        )
        if paid is not None and paid > updated:
            paid = updated
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        district, province, postcode = rng.choice(_PLACES)
        phone = f"66{rng.choice('689')}{rng.randrange(10_000_000, 99_999_999)}"
        items = []
        for line in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            product = self.products[rng.randrange(len(self.products))]
            variation = rng.choice(product.variations)
            quantity = rng.choice((1, 1, 1, 2, 3))
            discount = rng.choice((Decimal("0"), Decimal("0"), Decimal("10.00"), Decimal("25.50")))
            items.append(
                SeedItem(
                    line_id=self.order_id(index) * 10 + line,
                    product_id=product.product_id,
                    variation_id=variation.variation_id,
                    sku=variation.sku,
                    name=product.name,
                    variation=variation.name,
                    quantity=quantity,
                    unit_price=variation.price,
                    discount=min(discount, variation.price * quantity),
                )
            )
        return SeedOrder(
            index=index,
            order_id=self.order_id(index),
            status=status,
            created_at=created,
            updated_at=updated,
            paid_at=paid,
            buyer_first_name=first,
            buyer_last_name=last,
            buyer_phone=phone,
            buyer_email=f"buyer{index}@example.co.th",
            address=SeedAddress(
                name=f"{first} {last}",
                phone=phone,
                line1=f"{rng.randrange(1, 999)}/{rng.randrange(1, 99)} {rng.choice(_STREETS)}",
                district=district,
                province=province,
                postal_code=postcode,
            ),
            items=items,
            shipping_fee=Decimal(rng.choice(("0", "30", "38", "45.50", "60"))),
            voucher=Decimal(rng.choice(("0", "0", "0", "20", "50.25"))),
            payment_method=payment,
            is_cod=is_cod,
        )

    def update_index(self) -> list[tuple[datetime, int]]:
        """(updated_at, index) of every order, oldest update first; rebuilt after changes."""
        return self._update_index()

    def _update_index(self) -> list[tuple[datetime, int]]:
        if self._by_update is None:
            self._by_update = sorted((self.order(i).updated_at, i) for i in range(self.order_count))
        return self._by_update

    def updated_between(self, start: datetime, end: datetime) -> list[SeedOrder]:
        """Orders with start <= updated_at < end, oldest update first (ties by index)."""
        index = self._update_index()
        lo = bisect.bisect_left(index, (start, -1))
        hi = bisect.bisect_left(index, (end, -1))
        return [self.order(i) for _, i in index[lo:hi]]

    def created_between(self, start: datetime, end: datetime) -> list[SeedOrder]:
        return [
            o
            for o in (self.order(i) for i in range(self.order_count))
            if start <= o.created_at < end
        ]

    # --- changes over time ---------------------------------------------------------------

    def place_order(
        self, sku: str, quantity: int = 1, *, status: str = "pending", index_seed: int = 0
    ) -> SeedOrder:
        """A buyer orders `quantity` of `sku` now: a new order, and the shop's stock of that
        variation falls by as much, as the marketplace itself does on a sale."""
        found = self.variation_by_sku(sku)
        if found is None:
            raise KeyError(sku)
        product, variation = found
        index = self.order_count
        template = self._generate(index + index_seed)
        now = datetime.now(UTC).replace(microsecond=0)
        order = replace(
            template,
            index=index,
            order_id=self.order_id(index),
            status=status,
            created_at=now,
            updated_at=now,
            paid_at=None if template.is_cod else now,
            items=[
                SeedItem(
                    line_id=self.order_id(index) * 10,
                    product_id=product.product_id,
                    variation_id=variation.variation_id,
                    sku=variation.sku,
                    name=product.name,
                    variation=variation.name,
                    quantity=quantity,
                    unit_price=variation.price,
                    discount=Decimal("0"),
                )
            ],
        )
        self.order_count += 1
        self.end = max(self.end, now + timedelta(seconds=1))
        self._overrides[index] = order
        self._by_update = None
        variation.stock = max(0, variation.stock - quantity)
        product.updated_at = now
        return order

    def touch(
        self, index: int, *, status: str | None = None, at: datetime | None = None
    ) -> SeedOrder:
        """Change one order (status and/or update time) as the marketplace would."""
        current = self.order(index)
        new_status = status or current.status
        if new_status not in STATUSES:
            raise ValueError(f"unknown status {new_status!r}")
        when = at or max(
            datetime.now(UTC).replace(microsecond=0), current.updated_at + timedelta(seconds=1)
        )
        changed = replace(current, status=new_status, updated_at=when, version=current.version + 1)
        if new_status != "unpaid" and not changed.is_cod and changed.paid_at is None:
            changed.paid_at = when
        self._overrides[index] = changed
        self._by_update = None
        return changed

    def change_fraction(self, fraction: float, *, at: datetime | None = None) -> list[SeedOrder]:
        """Change about `fraction` of all orders (deterministic choice), e.g. 0.01 for 1%."""
        step = max(1, round(1 / fraction)) if fraction > 0 else 0
        if not step:
            return []
        lifecycle = {
            "unpaid": "pending",
            "pending": "ready_to_ship",
            "ready_to_ship": "shipped",
            "shipped": "delivered",
            "delivered": "completed",
            "cancelling": "cancelled",
        }
        changed = []
        for index in range(0, self.order_count, step):
            current = self.order(index)
            changed.append(
                self.touch(index, status=lifecycle.get(current.status, current.status), at=at)
            )
        return changed

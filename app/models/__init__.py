"""ORM models, one file per table; importing this package registers them all."""

from app.models.alert import MarketplaceAlert
from app.models.api_key import ApiKey
from app.models.base import Base
from app.models.connect_grant import MarketplaceConnectGrant
from app.models.connect_state import MarketplaceConnectState
from app.models.connection import MarketplaceConnection
from app.models.customer import Customer
from app.models.customer_key import CustomerKey
from app.models.customer_order import CustomerOrder
from app.models.customer_refresh_mark import CustomerRefreshMark
from app.models.failed_order import MarketplaceFailedOrder
from app.models.fulfillment import OrderFulfillment
from app.models.inventory_sku import InventorySku
from app.models.job_outbox import JobOutbox
from app.models.live_comment import LiveComment
from app.models.live_session import LiveSession
from app.models.live_session_product import LiveSessionProduct
from app.models.messenger_thread import MessengerThread
from app.models.order import MarketplaceOrder
from app.models.order_item import MarketplaceOrderItem
from app.models.platform import MarketplacePlatform
from app.models.product import MarketplaceProduct
from app.models.refresh_token import RefreshToken
from app.models.review import MarketplaceReview
from app.models.sku_mapping import SkuMapping
from app.models.social_order import SocialOrder
from app.models.social_order_line import SocialOrderLine
from app.models.social_reply import SocialReply
from app.models.stock_ledger import StockLedgerEntry
from app.models.stock_level import MarketplaceStockLevel
from app.models.stock_reservation import StockReservation
from app.models.sync_log import MarketplaceSyncLog
from app.models.user import User
from app.models.webhook import MarketplaceWebhook

__all__ = [
    "ApiKey",
    "Base",
    "Customer",
    "CustomerKey",
    "CustomerOrder",
    "CustomerRefreshMark",
    "InventorySku",
    "JobOutbox",
    "LiveComment",
    "LiveSession",
    "LiveSessionProduct",
    "MarketplaceAlert",
    "MarketplaceConnectGrant",
    "MarketplaceConnectState",
    "MarketplaceConnection",
    "MarketplaceFailedOrder",
    "MarketplaceOrder",
    "MarketplaceOrderItem",
    "MarketplacePlatform",
    "MarketplaceProduct",
    "MarketplaceReview",
    "MarketplaceStockLevel",
    "MarketplaceSyncLog",
    "MarketplaceWebhook",
    "MessengerThread",
    "OrderFulfillment",
    "RefreshToken",
    "SkuMapping",
    "SocialOrder",
    "SocialOrderLine",
    "SocialReply",
    "StockLedgerEntry",
    "StockReservation",
    "User",
]

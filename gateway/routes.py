"""The gateway's route table: the one list the Python gateway serves and APISIX config is rendered from.

Keeping a single table means the development gateway and the deployed APISIX can never disagree about
which prefixes exist, which service owns them, or which ones skip the JWT check.
"""
from __future__ import annotations

from dataclasses import dataclass

# Settings.upstreams key -> the name the service registers under in Nacos (DESIGN.md §3).
NACOS_SERVICE_NAMES = {
    "orders": "OrderService",
    "payments": "PaymentService",
    "notifications": "NotificationService",
}


@dataclass(frozen=True)
class Route:
    """A path prefix (ending in `/`) owned by one upstream service."""

    prefix: str
    service: str
    auth: bool = True

    @property
    def nacos_service(self) -> str:
        return NACOS_SERVICE_NAMES[self.service]

    def matches(self, path: str) -> bool:
        # The bare prefix (`/api/orders`) is included so the service, not the gateway, decides
        # whether to redirect it to the slashed form.
        return path.startswith(self.prefix) or path == self.prefix.rstrip("/")


ROUTES: tuple[Route, ...] = (
    Route("/api/orders/", "orders"),
    # Provider callbacks carry no JWT; PaymentService verifies the provider's signature instead.
    Route("/api/payments/callback/", "payments", auth=False),
    Route("/api/payments/", "payments"),
    Route("/api/risk/", "payments"),
    Route("/api/notifications/", "notifications"),
)


def match(path: str, routes: tuple[Route, ...] = ROUTES) -> Route | None:
    """The route with the longest prefix matching `path` (a decoded path), or None.

    Longest-prefix order is what lets the public callback prefix win over `/api/payments/`.
    """
    candidates = [route for route in routes if route.matches(path)]
    return max(candidates, key=lambda route: len(route.prefix), default=None)


def has_dot_segment(path: str) -> bool:
    """True when `path` has a `.` or `..` segment.

    Such a path can be normalised differently by the gateway and the upstream (a public prefix
    followed by `../` could land on a protected one), so the gateway refuses it outright.
    """
    return any(segment in (".", "..") for segment in path.split("/"))

"""List envelopes, bounds and links that point back through the gateway."""
from __future__ import annotations

import pytest

from tests.factories import item, order_body


def test_pages_and_links(stack, buyer, seller):
    api = stack.api(buyer.token)
    for _ in range(5):
        assert api.post("/api/orders/", order_body(seller.uuid, items=[item()])).status == 201
    first = api.get("/api/orders/?page_size=2").json
    assert first["count"] == 5 and len(first["results"]) == 2 and first["previous"] is None
    assert first["next"].startswith(stack.gateway.url + "/api/orders/?")  # the gateway's host, not the service's
    second = api.get(first["next"].removeprefix(stack.gateway.url)).json
    third = api.get(second["next"].removeprefix(stack.gateway.url)).json
    assert len(second["results"]) == 2 and len(third["results"]) == 1 and third["next"] is None
    seen = [o["order_uuid"] for page in (first, second, third) for o in page["results"]]
    assert len(set(seen)) == 5
    assert api.get("/api/orders/?page=4&page_size=2").status == 404
    assert api.get("/api/orders/?page_size=100").status == 200


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=abc", "page_size=0", "page_size=101", "page_size=x"])
def test_out_of_bounds_is_422(stack, buyer, query):
    reply = stack.api(buyer.token).get(f"/api/orders/?{query}")
    assert reply.status == 422
    assert query.split("=")[0] in reply.json["details"]


def test_empty_first_page(stack, buyer):
    page = stack.api(buyer.token).get("/api/orders/").json
    assert page == {"count": 0, "next": None, "previous": None, "results": []}

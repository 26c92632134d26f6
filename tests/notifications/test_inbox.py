"""The inbox through the real gateway: order, filters, pages, read / read-all / unread-count /
delete, and another user's notification answering 404 everywhere."""
from __future__ import annotations

import pytest

from tests.notifications.support import add_notifications, inbox


def unread(stack, user) -> int:
    reply = stack.api(user.token).get("/api/notifications/unread-count/")
    assert reply.status == 200
    return reply.json["unread_count"]


def test_newest_first_with_type_and_read_filters(stack, buyer, stranger):
    old = add_notifications(stack, buyer.uuid, ["transaction"], read=True)
    made = add_notifications(stack, buyer.uuid, ["transaction", "system", "promotion", "system"])
    add_notifications(stack, stranger.uuid, ["system"])
    listed = inbox(stack, buyer)
    assert [n["notification_uuid"] for n in listed] == [*made[::-1], *old]
    assert [n["notification_uuid"] for n in inbox(stack, buyer, "&type=system")] == [made[3], made[1]]
    assert [n["notification_uuid"] for n in inbox(stack, buyer, "&read=true")] == old
    assert len(inbox(stack, buyer, "&read=false")) == 4
    assert [n["notification_uuid"] for n in inbox(stack, buyer, "&type=transaction&read=false")] == [made[0]]
    first = listed[-1]
    assert set(first) == {"notification_uuid", "type", "title", "content", "read", "read_at", "related_id",
                          "related_data", "created_at"}
    assert first["read"] is True and first["read_at"].endswith("+00:00") and first["related_data"] == {"n": 0}


@pytest.mark.parametrize("query", ["type=news", "read=perhaps", "page_size=101", "page=0"])
def test_bad_filters_are_422(stack, buyer, query):
    reply = stack.api(buyer.token).get(f"/api/notifications/?{query}")
    assert reply.status == 422 and query.split("=")[0] in reply.json["details"]


def test_pages_link_through_the_gateway(stack, buyer):
    made = add_notifications(stack, buyer.uuid, ["system"] * 5)
    api = stack.api(buyer.token)
    first = api.get("/api/notifications/?page_size=2").json
    assert first["count"] == 5 and first["previous"] is None
    assert first["next"].startswith(stack.gateway.url + "/api/notifications/?")
    second = api.get(first["next"].removeprefix(stack.gateway.url)).json
    third = api.get(second["next"].removeprefix(stack.gateway.url)).json
    seen = [n["notification_uuid"] for page in (first, second, third) for n in page["results"]]
    assert seen == made[::-1] and third["next"] is None
    assert api.get("/api/notifications/?page=4&page_size=2").status == 404


def test_read_one_is_idempotent_and_counts_drop(stack, buyer):
    target, other = add_notifications(stack, buyer.uuid, ["transaction", "system"])
    assert unread(stack, buyer) == 2
    api = stack.api(buyer.token)
    first = api.post(f"/api/notifications/{target}/read/", {})
    assert first.status == 200 and first.json["read"] is True and first.json["read_at"]
    again = api.post(f"/api/notifications/{target}/read/")
    assert again.status == 200 and again.json["read_at"] == first.json["read_at"]  # the first read stands
    assert unread(stack, buyer) == 1
    assert api.get(f"/api/notifications/{other}/").json["read"] is False
    assert api.post(f"/api/notifications/{target}/read/", {"read": False}).status == 422


def test_read_all_says_how_many_it_marked(stack, buyer, stranger):
    add_notifications(stack, buyer.uuid, ["transaction"] * 3)
    add_notifications(stack, buyer.uuid, ["system"], read=True)
    add_notifications(stack, stranger.uuid, ["system"] * 2)
    api = stack.api(buyer.token)
    reply = api.post("/api/notifications/read-all/", {})
    assert reply.status == 200 and reply.json == {"marked": 3}
    assert api.post("/api/notifications/read-all/").json == {"marked": 0}
    assert unread(stack, buyer) == 0 and unread(stack, stranger) == 2
    assert all(n["read"] and n["read_at"] for n in inbox(stack, buyer))


def test_delete_answers_204_and_the_notification_is_gone(stack, buyer):
    doomed, kept = add_notifications(stack, buyer.uuid, ["promotion", "system"])
    api = stack.api(buyer.token)
    reply = api.request("DELETE", f"/api/notifications/{doomed}/")
    assert reply.status == 204 and reply.raw == b""
    assert api.get(f"/api/notifications/{doomed}/").status == 404
    assert api.request("DELETE", f"/api/notifications/{doomed}/").status == 404
    assert [n["notification_uuid"] for n in inbox(stack, buyer)] == [kept]
    assert unread(stack, buyer) == 1


def test_another_users_notification_is_404_everywhere(stack, buyer, stranger, make_user):
    [theirs] = add_notifications(stack, buyer.uuid, ["transaction"])
    api = stack.api(stranger.token)
    for method, path in [("GET", f"/api/notifications/{theirs}/"), ("POST", f"/api/notifications/{theirs}/read/"),
                         ("DELETE", f"/api/notifications/{theirs}/")]:
        reply = api.request(method, path, body={} if method == "POST" else None)
        assert reply.status == 404 and reply.json["error"] == "notification_not_found", (method, path)
    assert inbox(stack, stranger) == [] and unread(stack, stranger) == 0
    assert api.post("/api/notifications/read-all/").json == {"marked": 0}
    assert unread(stack, buyer) == 1 and stack.api(buyer.token).get(f"/api/notifications/{theirs}/").status == 200
    admin = stack.api(make_user("admin").token)
    assert admin.get(f"/api/notifications/{theirs}/").status == 200  # admins read anything by id
    assert admin.post(f"/api/notifications/{theirs}/read/").status == 404  # but act only on their own


def test_tokens_are_checked_by_the_service_itself(stack, buyer):
    direct = stack.direct(service="notifications")
    reply = direct.get("/api/notifications/", headers={"X-User-UUID": str(buyer.uuid)})
    assert reply.status == 401 and reply.json["error"] == "missing_token"
    assert stack.api().get("/api/notifications/unread-count/").status == 401
    assert stack.direct(buyer.token, service="notifications").get("/api/notifications/unread-count/").json == {
        "unread_count": 0}

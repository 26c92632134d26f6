"""OpenAPI 3 generated from the marshmallow schemas the views declare with `@doc(...)`."""
from __future__ import annotations

import re
from functools import cache
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app
from marshmallow import Schema, fields

from api.common.auth import public
from api.common.fields import Money

bp = Blueprint("openapi", __name__)

_PATH_PARAM = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")
ERROR_STATUSES = {400: "Malformed request", 401: "Missing or invalid token", 404: "Not found",
                  409: "State conflict", 422: "Validation failed"}


class ErrorSchema(Schema):
    error = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)
    request_id = fields.String(required=True)


@cache
def page_of(item: type[Schema]) -> type[Schema]:
    """The list envelope `{"count", "next", "previous", "results"}` around `item` (one class each)."""
    return type(f"{item.__name__.removesuffix('Schema')}PageSchema", (Schema,), {
        "count": fields.Integer(required=True),
        "next": fields.String(allow_none=True, required=True),
        "previous": fields.String(allow_none=True, required=True),
        "results": fields.List(fields.Nested(item), required=True),
    })


def doc(summary: str, *, tag: str, response: type[Schema] | None = None, status: int = 200,
        body: type[Schema] | None = None, query: type[Schema] | None = None, errors=(401, 404)):
    """Attach the OpenAPI description of a view; `/openapi.json` is built from these."""

    def decorator(view):
        view._openapi = dict(summary=summary, tag=tag, response=response, status=status, body=body,
                             query=query, errors=errors)
        return view

    return decorator


def _operation(meta: dict, path_params: list[dict], is_public: bool) -> dict:
    content = {"application/json": {"schema": meta["response"]}} if meta["response"] else None
    responses = {str(meta["status"]): {"description": "Success", **({"content": content} if content else {})}}
    statuses = set(meta["errors"]) | ({422, 400} if meta["body"] or meta["query"] else set())
    for status in sorted(statuses - ({401} if is_public else set())):
        responses[str(status)] = {"description": ERROR_STATUSES.get(status, "Error"),
                                  "content": {"application/json": {"schema": "ErrorSchema"}}}
    operation = {"summary": meta["summary"], "tags": [meta["tag"]], "responses": responses,
                 "parameters": list(path_params)}
    if meta["query"]:
        operation["parameters"].append({"in": "query", "schema": meta["query"]})
    if meta["body"]:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": meta["body"]}}}
    operation["security"] = [] if is_public else [{"bearerAuth": []}]
    return operation


def build_spec(app: Flask) -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(title=f"CFMP {app.config['CFMP_SERVICE']} service", version="1.0.0",
                   openapi_version="3.0.3", plugins=[plugin])
    plugin.map_to_openapi_type(Money, "string", "decimal")
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("ErrorSchema", schema=ErrorSchema)
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_openapi", None)
        if meta is None:
            continue
        params = [{"in": "path", "name": m["name"], "required": True,
                   "schema": {"type": "string", **({"format": "uuid"} if m["converter"] == "uuid" else {})}}
                  for m in _PATH_PARAM.finditer(rule.rule)]
        path = _PATH_PARAM.sub(lambda m: "{" + m["name"] + "}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(meta, params, getattr(view, "_public", False))
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
@public
def openapi():
    extensions = current_app.extensions
    if "openapi" not in extensions:
        extensions["openapi"] = build_spec(current_app)
    return extensions["openapi"], 200

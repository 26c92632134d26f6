"""OpenAPI 3 generated from the marshmallow schemas the views declare with `@doc(...)`."""
from __future__ import annotations

import re
from functools import cache
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app
from marshmallow import Schema, fields, missing

from api.common.auth import public
from api.common.fields import Money, Text
from models.base import MAX_MONEY

bp = Blueprint("openapi", __name__)

_PATH_PARAM = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")
ERROR_STATUSES = {400: "Malformed request", 401: "Missing or invalid token", 404: "Not found",
                  409: "State conflict", 422: "Validation failed",
                  503: "Unavailable for now: retry after Retry-After seconds"}


# What the edge fields accept, in JSON Schema terms (api/common/fields.py enforces it):
# text without control characters but tab and newline, not blank when required; money as a
# string of digits with at most two places, greater than 0 and at most MAX_MONEY, or a JSON number.
_TEXT = r"^[^\x00-\x08\x0b-\x1f]*$"
_REQUIRED_TEXT = r"^[^\x00-\x08\x0b-\x1f]*[^\s\x00-\x1f][^\x00-\x08\x0b-\x1f]*$"
_MONEY_IN = r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,9}(\.[0-9]{1,2})?)$"
_MONEY_OUT = r"^[0-9]+\.[0-9]{2}$"


def _edge_fields(self, field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: the syntax of Text and Money beyond their JSON type."""
    if isinstance(field, Text) and "pattern" not in ret:
        return {"pattern": _REQUIRED_TEXT if field.required else _TEXT}
    if isinstance(field, Money):
        if not (field.required or field.load_default is not missing):
            return {"pattern": _MONEY_OUT}  # a field only ever dumped
        text = {"type": "string", "pattern": _MONEY_IN}
        if ret.pop("nullable", False):
            text["nullable"] = True
        ret.pop("type", None), ret.pop("format", None)
        number = {"type": "number", "minimum": 0.01, "maximum": float(MAX_MONEY), "multipleOf": 0.01}
        return {"anyOf": [text, number]}
    return {}


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
        body: type[Schema] | dict | None = None, query: type[Schema] | None = None, errors=(401, 404)):
    """Attach the OpenAPI description of a view; `/openapi.json` is built from these.

    `body` is a schema class, or `{"oneOf": [schema classes]}` when its shape depends on a field.
    """

    def decorator(view):
        view._openapi = dict(summary=summary, tag=tag, response=response, status=status, body=body,
                             query=query, errors=errors)
        return view

    return decorator


def _operation(meta: dict, path_params: list[dict], is_public: bool) -> dict:
    content = {"application/json": {"schema": meta["response"]}} if meta["response"] else None
    responses = {str(meta["status"]): {"description": "Success", **({"content": content} if content else {})}}
    statuses = set(meta["errors"]) | ({422, 400} if meta["body"] or meta["query"] else set())
    for status in sorted(statuses):
        responses[str(status)] = {"description": ERROR_STATUSES.get(status, "Error"),
                                  "content": {"application/json": {"schema": "ErrorSchema"}}}
    operation = {"summary": meta["summary"], "tags": [meta["tag"]], "responses": responses,
                 "parameters": list(path_params)}
    if meta["query"]:
        operation["parameters"].append({"in": "query", "schema": meta["query"]})
    if meta["body"]:
        # An empty body reads as `{}` (api/common/body.py): it is required only when a field is.
        shapes = meta["body"]["oneOf"] if isinstance(meta["body"], dict) else [meta["body"]]
        required = all(any(field.required for field in shape._declared_fields.values()) for shape in shapes)
        operation["requestBody"] = {"required": required,
                                    "content": {"application/json": {"schema": meta["body"]}}}
    operation["security"] = [] if is_public else [{"bearerAuth": []}]
    return operation


def build_spec(app: Flask) -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(title=f"CFMP {app.config['CFMP_SERVICE']} service", version="1.0.0",
                   openapi_version="3.0.3", plugins=[plugin])
    plugin.map_to_openapi_type(Money, "string", "decimal")
    plugin.converter.add_attribute_function(_edge_fields)
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
    document = spec.to_dict()
    for refine in app.extensions.get("openapi.refinements", ()):
        refine(document, app.config["CFMP_SETTINGS"])  # what depends on this deployment's settings
    return document


@bp.get("/openapi.json")
@public
def openapi():
    extensions = current_app.extensions
    if "openapi" not in extensions:
        extensions["openapi"] = build_spec(current_app)
    return extensions["openapi"], 200

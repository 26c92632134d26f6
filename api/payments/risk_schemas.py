"""Marshmallow schemas of the risk admin API; policy parameters are validated per rule."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from api.common.fields import Money, StrictInteger, Text
from api.common.pagination import PageQuerySchema
from models import ReviewStatus, RiskDecision, RiskLevel, RuleKind

WINDOW = validate.Range(min=1, max=30 * 86400)


class AmountParams(Schema):
    threshold = Money(required=True)


class CountParams(Schema):
    max_count = StrictInteger(required=True, validate=validate.Range(min=0, max=100_000))
    window_seconds = StrictInteger(required=True, validate=WINDOW)


class AddressParams(Schema):
    max_distinct = StrictInteger(required=True, validate=validate.Range(min=1, max=1000))
    window_seconds = StrictInteger(required=True, validate=WINDOW)


class DenyListParams(Schema):
    user_uuids = fields.List(fields.UUID(), required=True, validate=validate.Length(max=10_000))


PARAMS = {RuleKind.AMOUNT: AmountParams(), RuleKind.VELOCITY: CountParams(), RuleKind.FAILURES: CountParams(),
          RuleKind.ADDRESSES: AddressParams(), RuleKind.DENY_LIST: DenyListParams()}


def load_params(rule: RuleKind, params: dict) -> dict:
    """Validate `params` for `rule` and return them JSON-ready (decimals and uuids as strings)."""
    try:
        loaded = PARAMS[rule].load(params)
    except ValidationError as exc:
        raise ValidationError({"params": exc.messages}) from None
    return PARAMS[rule].dump(loaded)


class PolicyCreateSchema(Schema):
    name = Text(required=True, validate=validate.Length(max=64))
    rule = fields.Enum(RuleKind, by_value=True, required=True)
    enabled = fields.Boolean(load_default=True)
    weight = StrictInteger(required=True, validate=validate.Range(min=0, max=100))
    params = fields.Dict(required=True)

    @post_load
    def _params_fit_rule(self, data, **kwargs):
        return {**data, "params": load_params(data["rule"], data["params"])}


def _policy_shape(prefix: str, rules: tuple[RuleKind, ...], params: type[Schema]) -> type[Schema]:
    """PolicyCreateSchema for one kind of rule, `params` spelled out: for `/openapi.json` only."""
    return type(f"{prefix}PolicyCreateSchema", (PolicyCreateSchema,), {
        "rule": fields.String(required=True, validate=validate.OneOf([rule.value for rule in rules])),
        "params": fields.Nested(params, required=True),
    })


# The request body of `POST /api/risk/policies/` as documented: which params fit depends on the rule.
POLICY_CREATE_DOC = {"oneOf": [
    _policy_shape("Amount", (RuleKind.AMOUNT,), AmountParams),
    _policy_shape("Count", (RuleKind.VELOCITY, RuleKind.FAILURES), CountParams),
    _policy_shape("Address", (RuleKind.ADDRESSES,), AddressParams),
    _policy_shape("DenyList", (RuleKind.DENY_LIST,), DenyListParams),
]}


class PolicyUpdateSchema(Schema):
    name = Text(validate=validate.Length(max=64))
    enabled = fields.Boolean()
    weight = StrictInteger(validate=validate.Range(min=0, max=100))
    params = fields.Dict()


class PolicySchema(Schema):
    policy_uuid = fields.UUID()
    name = fields.String()
    rule = fields.Enum(RuleKind, by_value=True)
    enabled = fields.Boolean()
    weight = fields.Integer()
    params = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class AssessmentSchema(Schema):
    assessment_uuid = fields.UUID()
    payment_uuid = fields.UUID(attribute="payment.payment_uuid")
    score = fields.Integer()
    level = fields.Enum(RiskLevel, by_value=True)
    decision = fields.Enum(RiskDecision, by_value=True)
    reasons = fields.Dict()
    review_status = fields.Enum(ReviewStatus, by_value=True, allow_none=True)
    reviewed_by = fields.UUID(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class AssessmentListQuerySchema(PageQuerySchema):
    class Meta:
        unknown = EXCLUDE

    level = fields.Enum(RiskLevel, by_value=True, load_default=None)
    decision = fields.Enum(RiskDecision, by_value=True, load_default=None)


POLICY_CREATE = PolicyCreateSchema()
POLICY_UPDATE = PolicyUpdateSchema()
POLICY = PolicySchema()
POLICIES = PolicySchema(many=True)
ASSESSMENT = AssessmentSchema()
ASSESSMENTS = AssessmentSchema(many=True)
ASSESSMENT_LIST_QUERY = AssessmentListQuerySchema()

"""Risk admin endpoints (DESIGN.md §7): assessments to read and decide, policies to tune."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Blueprint
from sqlalchemy.exc import IntegrityError

from api.common.auth import admin_only, current_identity
from api.common.body import load_body, load_query
from api.common.errors import Conflict, NotFound
from api.common.idempotency import idempotent
from api.common.openapi import doc, page_of
from api.common.pagination import PageQuerySchema, paginate
from api.payments.risk_schemas import (
    ASSESSMENT, ASSESSMENT_LIST_QUERY, ASSESSMENTS, POLICIES, POLICY, POLICY_CREATE, POLICY_CREATE_DOC,
    POLICY_UPDATE, AssessmentListQuerySchema, AssessmentSchema, PolicySchema, PolicyUpdateSchema, load_params,
)
from api.payments.schemas import EMPTY, EmptySchema
from models import PaymentIdempotencyKey, RiskAssessment, SecurityPolicy, db
from tasks.payments import actions
from tasks.risk.actions import ensure_policies

bp = Blueprint("risk", __name__, url_prefix="/api/risk")
TAG = "risk"
ADMIN_ERRORS = (401, 403, 404)
PAGE_QUERY = PageQuerySchema()


@bp.get("/assessments/")
@doc("Risk assessments, newest first", tag=TAG, query=AssessmentListQuerySchema, response=page_of(AssessmentSchema),
     errors=ADMIN_ERRORS)
@admin_only
def list_assessments():
    query = load_query(ASSESSMENT_LIST_QUERY)
    select = sa.select(RiskAssessment)
    for column in ("level", "decision"):
        if query[column] is not None:
            select = select.where(getattr(RiskAssessment, column) == query[column])
    select = select.order_by(RiskAssessment.created_at.desc(), RiskAssessment.id.desc())
    return paginate(select, query["page"], query["page_size"], ASSESSMENTS.dump), 200


def _assessment(assessment_uuid: uuid.UUID) -> RiskAssessment:
    select = sa.select(RiskAssessment).where(RiskAssessment.assessment_uuid == assessment_uuid)
    found = db.session.scalars(select).first()
    if found is None:
        raise NotFound("assessment_not_found", "No such risk assessment.")
    return found


@bp.get("/assessments/<uuid:assessment_uuid>/")
@doc("One risk assessment", tag=TAG, response=AssessmentSchema, errors=ADMIN_ERRORS)
@admin_only
def get_assessment(assessment_uuid: uuid.UUID):
    return ASSESSMENT.dump(_assessment(assessment_uuid)), 200


def _review(assessment_uuid: uuid.UUID, approve: bool):
    load_body(EMPTY)
    assessment = _assessment(assessment_uuid)
    try:
        actions.review(assessment, current_identity().user_uuid, approve)
    except actions.StateConflict as exc:
        raise Conflict("review_state_conflict", "This assessment is not awaiting review.",
                       {"payment_status": str(exc.current),
                        "review_status": assessment.review_status and assessment.review_status.value}) from None
    db.session.commit()
    db.session.refresh(assessment)
    return ASSESSMENT.dump(assessment), 200


@bp.post("/assessments/<uuid:assessment_uuid>/approve/")
@doc("Approve a held payment: it is charged", tag=TAG, body=EmptySchema, response=AssessmentSchema,
     errors=(*ADMIN_ERRORS, 409))
@admin_only
def approve_assessment(assessment_uuid: uuid.UUID):
    return _review(assessment_uuid, approve=True)


@bp.post("/assessments/<uuid:assessment_uuid>/reject/")
@doc("Reject a held payment: it fails", tag=TAG, body=EmptySchema, response=AssessmentSchema,
     errors=(*ADMIN_ERRORS, 409))
@admin_only
def reject_assessment(assessment_uuid: uuid.UUID):
    return _review(assessment_uuid, approve=False)


@bp.get("/policies/")
@doc("Security policies (seeded with defaults on first use)", tag=TAG, query=PageQuerySchema,
     response=page_of(PolicySchema), errors=ADMIN_ERRORS)
@admin_only
def list_policies():
    query = load_query(PAGE_QUERY)
    ensure_policies()
    select = sa.select(SecurityPolicy).order_by(SecurityPolicy.id)
    return paginate(select, query["page"], query["page_size"], POLICIES.dump), 200


def _flush_policy(policy: SecurityPolicy) -> None:
    name = policy.name
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("policy_name_taken", "A policy with this name exists.", {"name": name}) from None


@bp.post("/policies/")
@doc("Add a policy (another rule instance with its own parameters)", tag=TAG, body=POLICY_CREATE_DOC,
     response=PolicySchema, status=201, errors=(*ADMIN_ERRORS, 409))
@admin_only
@idempotent(PaymentIdempotencyKey)
def create_policy():
    data = load_body(POLICY_CREATE)
    ensure_policies()
    policy = SecurityPolicy(name=data["name"], rule=data["rule"], enabled=data["enabled"], weight=data["weight"])
    policy.params = data["params"]
    db.session.add(policy)
    _flush_policy(policy)
    return POLICY.dump(policy), 201


@bp.patch("/policies/<uuid:policy_uuid>/")
@doc("Change a policy's name, switch, weight or parameters", tag=TAG, body=PolicyUpdateSchema,
     response=PolicySchema, errors=(*ADMIN_ERRORS, 409))
@admin_only
def update_policy(policy_uuid: uuid.UUID):
    data = load_body(POLICY_UPDATE)
    policy = db.session.scalars(sa.select(SecurityPolicy).where(SecurityPolicy.policy_uuid == policy_uuid)).first()
    if policy is None:
        raise NotFound("policy_not_found", "No such policy.")
    if "params" in data:
        data["params"] = load_params(policy.rule, data["params"])
    for key, value in data.items():
        setattr(policy, key, value)
    _flush_policy(policy)
    db.session.commit()
    return POLICY.dump(policy), 200

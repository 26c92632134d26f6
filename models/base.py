"""Declarative base, exact types and the Flask-SQLAlchemy handle shared by every model."""
from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Money: DECIMAL(12, 2) — up to 9,999,999,999.99, exact on SQLite (stored as text by SQLAlchemy's
# Numeric with asdecimal) and on MariaDB.
Money = sa.Numeric(12, 2, asdecimal=True)
MAX_MONEY = Decimal("9999999999.99")
# Autoincrement keys: BIGINT on MariaDB, INTEGER (the rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(sa.TypeDecorator):
    """Stores naive UTC (portable across SQLite and MariaDB), returns aware UTC datetimes."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):  # keep microseconds: DATETIME alone drops them
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=False))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    # The map lives on the registry: Flask-SQLAlchemy subclasses Base, and SQLAlchemy 2.1 refuses a
    # per-class type_annotation_map on such subclasses.
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            dt.datetime: UTCDateTime(),
            Decimal: Money,
            uuid.UUID: sa.Uuid(as_uuid=True),
            # Enums are stored by value as plain strings, so adding a state is not a DDL change.
            enum.StrEnum: sa.Enum(
                enum.StrEnum, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]
            ),
        },
    )


db = SQLAlchemy(model_class=Base)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

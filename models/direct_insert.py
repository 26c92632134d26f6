"""Inserting new rows with one Core statement per model, past the ORM's unit of work.

For the hot path that creates an order (an order, its items, an audit row and an outbox row per
request), the unit of work's bookkeeping (identity tracking, dependency sort, cascades, post-fetch)
cost more CPU than the rows themselves: ~45% of the order service's samples. `insert_new` fills
an ordinary transient instance's Python-side column defaults onto it, INSERTs it on the given
connection (the session's own, so the rows share the request's transaction) and sets the generated
key, so code reading the instance afterwards (the response) sees what a flush would have left.

The instances are not added to the session: nothing expires, refreshes or re-flushes them, and
relationships between them are not followed (set foreign keys yourself). Only for rows that are
new, complete and not changed again in the transaction.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class _Column:
    attribute: str  # the mapped attribute's name on the instance
    name: str  # the table column's key in the INSERT's parameters
    default: sa.ColumnDefault | None  # Python-side default; server defaults are not used by the models


@cache
def _columns(mapper) -> tuple[tuple[_Column, ...], str | None]:
    """The columns an INSERT of this model writes, and the attribute of its generated key."""
    columns, generated = [], None
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if column.table is not mapper.local_table:
            continue
        if column.primary_key and column.autoincrement in (True, "auto") and column.default is None:
            generated = prop.key
            continue
        columns.append(_Column(prop.key, column.key, column.default))
    return tuple(columns), generated


def _value(instance, column: _Column):
    state = instance.__dict__
    if column.attribute in state:
        return state[column.attribute]
    default = column.default
    if default is None:
        value = None
    elif default.is_callable:
        value = default.arg(None)  # SQLAlchemy wraps a no-argument default to take the context
    elif default.is_scalar:
        value = default.arg
    else:  # a SQL expression default: no model has one, and its value could not be read back
        raise TypeError(f"{type(instance).__name__}.{column.attribute}: SQL defaults are not supported")
    setattr(instance, column.attribute, value)
    return value


def insert_new(connection: Connection, instances: Sequence) -> None:
    """INSERT transient instances of one model as one statement (an executemany for several).

    A single instance gets its generated primary key set; several do not (PyMySQL sends them as
    one multi-row INSERT, which reports only the first id), so use it for rows nobody reads by id
    in the same request.
    """
    if not instances:
        return
    mapper = sa.inspect(type(instances[0]))
    columns, generated = _columns(mapper)
    rows = [{column.name: _value(instance, column) for column in columns} for instance in instances]
    result = connection.execute(mapper.local_table.insert(), rows if len(rows) > 1 else rows[0])
    if generated is not None and len(instances) == 1:
        setattr(instances[0], generated, result.inserted_primary_key[0])

"""Make a source's rows conform to their table's schema (a use case's ``TableSpec``) before
they reach the lake.

Every source (landing files, PostgreSQL, the generator) ends here, so the rules are the same
for all: required columns must exist (a missing one is an error naming it), values are cast to
the declared types (a value that does not fit is an error naming the column), unknown columns
are reported and dropped, exact duplicate rows are dropped and counted, and rows are sorted by
the table's key so the same input always gives the same partition bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.usecase import TableSpec

ARROW_TYPES = {
    "string": pa.string(),
    "datetime64[us, UTC]": pa.timestamp("us", tz="UTC"),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}
"""The pandas dtypes a ``TableSpec.schema`` may name, as Arrow types in the lake."""


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The lake's Arrow schema of a table; an undeclared dtype is an error naming it."""
    fields = []
    for name, dtype in spec.schema.items():
        if dtype not in ARROW_TYPES:
            known = ", ".join(ARROW_TYPES)
            raise ValueError(f"table {spec.name}: column {name} has dtype {dtype!r} ({known})")
        fields.append(pa.field(name, ARROW_TYPES[dtype]))
    return pa.schema(fields)


class SourceError(ValueError):
    """Bad input, with a one-line message naming the file (or table) and the cause."""


@dataclass
class ConformReport:
    rows_read: int = 0
    rows: int = 0
    duplicates_dropped: int = 0
    unknown_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _cast(column: pa.ChunkedArray, target: pa.DataType, name: str, origin: str):
    if column.type == target:
        return column
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and not column.type.tz:
        raise SourceError(f"{origin}: column {name} has timestamps without a time zone")
    if pa.types.is_timestamp(target) and pa.types.is_string(column.type):
        try:
            return pc.cast(column, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(f"{origin}: column {name}: {_first_line(exc)}") from exc
    try:
        return pc.cast(column, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SourceError(f"{origin}: column {name} is not {target}: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def conform(tables: list[tuple[str, pa.Table]], spec: TableSpec) -> tuple[pa.Table, ConformReport]:
    """Conform each (origin, table) to ``spec``, concatenate, de-duplicate and sort by key."""
    schema = arrow_schema(spec)
    report = ConformReport()
    conformed = []
    for origin, table in tables:
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise SourceError(f"{origin}: missing required column(s) {', '.join(missing)}")
        report.unknown_columns += [
            c
            for c in table.column_names
            if c not in schema.names and c not in report.unknown_columns
        ]
        columns = [_cast(table.column(f.name), f.type, f.name, origin) for f in schema]
        conformed.append(pa.Table.from_arrays(columns, schema=schema))
        report.rows_read += table.num_rows
    if report.rows_read == 0:
        origins = ", ".join(origin for origin, _ in tables)
        raise SourceError(f"{origins}: no rows")
    table, report.duplicates_dropped = _sorted_unique(pa.concat_tables(conformed), spec.key)
    report.rows = table.num_rows
    return table, report


def _adjacent(column: pa.ChunkedArray, op: str) -> pa.Array:
    values = column.combine_chunks()
    return getattr(pc, op)(values[:-1], values[1:])


def _sorted_unique(table: pa.Table, key: tuple[str, ...]) -> tuple[pa.Table, int]:
    """Sort by key and drop exact duplicate rows, in O(n) when the input already is sorted and
    has unique keys (the usual case); the full de-duplication only runs when keys repeat."""
    order = [(c, "ascending") for c in key]
    if table.num_rows < 2:
        return table, 0
    if not pc.all(_in_key_order(table, key), skip_nulls=False).as_py():
        table = table.sort_by(order)
    repeated = _all(_adjacent(table.column(c), "equal") for c in key)
    if not pc.any(repeated).as_py():
        return table, 0
    unique = table.group_by(table.column_names, use_threads=False).aggregate([])
    unique = unique.select(table.column_names).sort_by(order)
    return unique, table.num_rows - unique.num_rows


def _in_key_order(table: pa.Table, key: tuple[str, ...]) -> pa.Array:
    """Row i <= row i+1 in the key's lexicographic order, for each adjacent pair."""
    *leading, last = key
    result = _adjacent(table.column(last), "less_equal")
    for name in reversed(leading):
        column = table.column(name)
        result = pc.or_(_adjacent(column, "less"), pc.and_(_adjacent(column, "equal"), result))
    return result


def _all(arrays) -> pa.Array:
    arrays = list(arrays)
    result = arrays[0]
    for array in arrays[1:]:
        result = pc.and_(result, array)
    return result

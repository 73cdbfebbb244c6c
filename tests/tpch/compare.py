"""Compares a query result with the oracle's expected result (tests/tpch/expected/*/qNN.json).

Standard library only, so that the unit tests and the engine tests can both import it.

`compare(expected, actual_columns, actual_rows, ordered)` returns a list of human-readable
differences; an empty list means the results agree.

Numeric tolerance: two numbers are equal when |a - b| <= REL_TOL * max(|a|, |b|) or
|a - b| <= ABS_TOL (math.isclose), with REL_TOL = ABS_TOL = 1e-9. Why that and not 1e-6:
  * What legitimately differs between engines is the order in which doubles are added (parallel
    partial aggregates, different join orders). Each addition rounds with relative error at most
    2^-53 (1.1e-16); for n terms of one sign the worst case is about n * 1.1e-16 relative, i.e.
    7e-12 for the 60,175 lineitem rows of sf 0.01 and 7e-10 for the 6 million of sf 1, and the
    typical error is far smaller (about sqrt(n) * 1.1e-16). Averages and ratios of such sums
    inherit the same relative error. 1e-9 is above every one of these.
  * What must be caught is a wrong answer, and the smallest realistic wrong answer is one row too
    many or too few in an aggregate. One lineitem quantity (at least 1) out of Q1's sum_qty of
    about 3.8e7 at sf 1 is a relative change of 2.6e-8: 1e-6 would miss it, 1e-9 does not.
  * The absolute floor only matters for results at or near zero (a difference of two close sums);
    money is in cents, so 1e-9 is far below any real difference.
Integers (bigint/integer columns: keys, counts) compare exactly when both sides are integers.
Strings compare exactly. Dates compare exactly after normalising datetime.date (what the trino
client returns) and 'YYYY-MM-DD' strings (what prestodb returns) to the same string.

Order: with `ordered=False` both results are compared as multisets of rows. With `ordered=True`
the rows must come in the order the ORDER BY keys (`expected["order_by"]`, column names) define;
consecutive expected rows whose ORDER BY keys are all equal form a tie group, whose rows an engine
may return in any order, so the actual rows are cut into chunks of the tie groups' sizes and each
chunk is compared with its group as a multiset. Without `order_by` in `expected`, every row is its
own group (a strict row-by-row comparison).
"""

import datetime
import decimal
import math
import re

REL_TOL = 1e-9
ABS_TOL = 1e-9
# Differences listed per kind before "... and N more".
MAX_LISTED = 10


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def normalize(value):
    """The comparable form of a value from the JSON file or from a client."""
    if isinstance(value, bool):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        # A DATE column must not come back as a timestamp; keep it distinguishable.
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_equal(expected, actual):
    expected, actual = normalize(expected), normalize(actual)
    if _is_number(expected) and _is_number(actual):
        if isinstance(expected, int) and isinstance(actual, int):
            return expected == actual
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if _is_number(expected) != _is_number(actual):
        return False
    return type(expected) is type(actual) and expected == actual


def rows_equal(expected_row, actual_row):
    return len(expected_row) == len(actual_row) and all(
        values_equal(e, a) for e, a in zip(expected_row, actual_row)
    )


def _show(row):
    return "(" + ", ".join(repr(normalize(value)) for value in row) + ")"


# ---------------------------------------------------------------------------------------------
# ORDER BY keys from the query text
# ---------------------------------------------------------------------------------------------

_STRING = re.compile(r"'(?:[^']|'')*'")
_ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)
_LIMIT = re.compile(r"\bLIMIT\s+(\d+)\s*$", re.IGNORECASE)
_DIRECTION = re.compile(r"\s+(ASC|DESC)(\s+NULLS\s+(FIRST|LAST))?$|\s+NULLS\s+(FIRST|LAST)$", re.I)


def _top_level_positions(text, pattern):
    """Start offsets of `pattern` matches outside parentheses and string literals."""
    blanked = _STRING.sub(lambda match: " " * len(match.group()), text)
    depths = []
    depth = 0
    for char in blanked:
        if char == "(":
            depth += 1
        depths.append(depth)
        if char == ")":
            depth -= 1
    return [match.start() for match in pattern.finditer(blanked) if depths[match.start()] == 0]


def _split_top_level_commas(text):
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def limit_of(sql):
    """The final `LIMIT n` of the statement, or None."""
    match = _LIMIT.search(sql.strip())
    return int(match.group(1)) if match else None


def without_limit(sql):
    return _LIMIT.sub("", sql.strip()).rstrip()


def order_by_columns(sql, columns):
    """Output column names that the statement's final ORDER BY sorts on, in order ([] if none).

    Each ORDER BY item must be an output column, written as its name or as `alias.name` (the
    qualifier is dropped: `s.name` sorts on the output column `name`). Anything else raises
    ValueError so that a query the comparison cannot reason about is noticed when the expected
    results are generated, not guessed at.
    """
    sql = without_limit(sql)
    positions = _top_level_positions(sql, _ORDER_BY)
    if not positions:
        return []
    clause = _ORDER_BY.sub("", sql[positions[-1]:], count=1)
    lowered = {column.lower(): column for column in columns}
    keys = []
    for item in _split_top_level_commas(clause):
        name = _DIRECTION.sub("", item).strip()
        bare = name.split(".")[-1].strip('"').lower()
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", bare) or bare not in lowered:
            raise ValueError(f"ORDER BY item {item!r} is not an output column of {columns}")
        keys.append(lowered[bare])
    return keys


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def _bucket_key(row):
    """Exact part of a row (everything but numbers), for matching multisets quickly."""
    return tuple(("n",) if _is_number(normalize(v)) else ("v", repr(normalize(v))) for v in row)


def multiset_difference(expected_rows, actual_rows):
    """(expected rows with no equal actual row, actual rows with no equal expected row)."""
    buckets = {}
    for index, row in enumerate(actual_rows):
        buckets.setdefault(_bucket_key(row), []).append(index)
    matched = set()
    missing = []
    for row in expected_rows:
        candidates = buckets.get(_bucket_key(row), [])
        for position, index in enumerate(candidates):
            if rows_equal(row, actual_rows[index]):
                matched.add(index)
                del candidates[position]
                break
        else:
            missing.append(row)
    extra = [row for index, row in enumerate(actual_rows) if index not in matched]
    return missing, extra


def _listed(label, rows):
    lines = [f"{label}: {_show(row)}" for row in rows[:MAX_LISTED]]
    if len(rows) > MAX_LISTED:
        lines.append(f"... and {len(rows) - MAX_LISTED} more {label.split()[0]} rows")
    return lines


def tie_groups(rows, key_indices):
    """(start, end) ranges of consecutive rows whose key values are all equal."""
    if not key_indices:
        return [(index, index + 1) for index in range(len(rows))]
    groups = []
    start = 0
    for index in range(1, len(rows) + 1):
        if index == len(rows) or not all(
            values_equal(rows[start][key], rows[index][key]) for key in key_indices
        ):
            groups.append((start, index))
            start = index
    return groups


def _simple_type(name):
    return re.sub(r"\(.*\)$", "", str(name).strip().lower())


def compare(expected, actual_columns, actual_rows, ordered, actual_types=None):
    """Differences between `expected` (the parsed JSON: columns, rows, optional order_by and
    types) and an actual result; [] when they agree. See the module docstring for the rules."""
    differences = []
    expected_columns = list(expected["columns"])
    expected_rows = [list(row) for row in expected["rows"]]
    actual_columns = list(actual_columns)
    actual_rows = [list(row) for row in actual_rows]

    if len(expected_columns) != len(actual_columns):
        return [
            f"column count: expected {len(expected_columns)} {expected_columns}, "
            f"got {len(actual_columns)} {actual_columns}"
        ]
    for index, (want, got) in enumerate(zip(expected_columns, actual_columns)):
        if want.lower() != str(got).lower():
            differences.append(f"column {index + 1} name: expected {want!r}, got {got!r}")
    if actual_types is not None and expected.get("types"):
        for index, (want, got) in enumerate(zip(expected["types"], actual_types)):
            if _simple_type(want) != _simple_type(got):
                differences.append(
                    f"column {index + 1} ({expected_columns[index]}) type: "
                    f"expected {want}, got {got}"
                )
    bad_width = [i for i, row in enumerate(actual_rows) if len(row) != len(expected_columns)]
    if bad_width:
        differences.append(f"{len(bad_width)} actual rows have a width other than the columns'")
        return differences

    if len(expected_rows) != len(actual_rows):
        differences.append(f"row count: expected {len(expected_rows)}, got {len(actual_rows)}")

    if not ordered or len(expected_rows) != len(actual_rows):
        missing, extra = multiset_difference(expected_rows, actual_rows)
        differences += _listed("missing row (expected, not returned)", missing)
        differences += _listed("unexpected row (returned, not expected)", extra)
        if ordered and not missing and not extra:
            differences.append("the rows agree as a multiset but not in number")
        return differences

    positions = {column.lower(): i for i, column in enumerate(expected_columns)}
    keys = [positions[name.lower()] for name in expected.get("order_by", [])]
    listed = 0
    for start, end in tie_groups(expected_rows, keys):
        want, got = expected_rows[start:end], actual_rows[start:end]
        if end - start == 1:
            if rows_equal(want[0], got[0]):
                continue
            problems = [
                f"{expected_columns[i]}: expected {normalize(e)!r}, got {normalize(a)!r}"
                for i, (e, a) in enumerate(zip(want[0], got[0]))
                if not values_equal(e, a)
            ]
            message = f"row {start + 1}: " + "; ".join(problems)
        else:
            missing, extra = multiset_difference(want, got)
            if not missing and not extra:
                continue
            message = (
                f"rows {start + 1}-{end} (tied on ORDER BY {expected.get('order_by')}): "
                + "; ".join(_listed("missing", missing) + _listed("unexpected", extra))
            )
        listed += 1
        if listed <= MAX_LISTED:
            differences.append(message)
    if listed > MAX_LISTED:
        differences.append(f"... and {listed - MAX_LISTED} more rows or tie groups differ")
    if listed:
        # A shifted or reordered result shows up as many differing positions; say whether the
        # rows themselves are right.
        missing, extra = multiset_difference(expected_rows, actual_rows)
        if not missing and not extra:
            differences.append("the same rows were returned, in the wrong order")
    return differences

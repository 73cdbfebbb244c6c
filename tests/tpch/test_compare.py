"""Unit tests of tests/tpch/compare.py: it must accept what is equal and report what is not."""

import datetime
import decimal
import json
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare import compare, order_by_columns, values_equal  # noqa: E402

COLUMNS = ["name", "day", "count", "total"]


def expected(rows, order_by=None, types=None):
    result = {"columns": COLUMNS, "rows": rows}
    if order_by is not None:
        result["order_by"] = order_by
    if types is not None:
        result["types"] = types
    return result


ROWS = [
    ["a", "1995-01-02", 3, 1000.25],
    ["b", "1995-01-03", 2, 999.5],
    ["c", "1995-01-04", 1, 10.0],
]


def copy(rows):
    return [list(row) for row in rows]


# ----- agreement ------------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_identical_results_agree(ordered):
    assert compare(expected(ROWS), COLUMNS, copy(ROWS), ordered) == []


def test_float_noise_from_summation_order_is_tolerated():
    rows = copy(ROWS)
    rows[0][3] = 1000.25 * (1 + 3e-13)
    assert compare(expected(ROWS), COLUMNS, rows, True) == []


def test_dates_as_date_objects_and_decimals_agree():
    rows = copy(ROWS)
    rows[1][1] = datetime.date(1995, 1, 3)
    rows[2][3] = decimal.Decimal("10.00")
    assert compare(expected(ROWS), COLUMNS, rows, True) == []


def test_column_names_compare_case_insensitively():
    assert compare(expected(ROWS), [c.upper() for c in COLUMNS], copy(ROWS), True) == []


def test_unordered_accepts_any_order():
    assert compare(expected(ROWS), COLUMNS, copy(ROWS)[::-1], False) == []


def test_ties_may_come_in_any_order():
    rows = [["a", "d", 2, 1.0], ["b", "d", 2, 2.0], ["c", "d", 1, 3.0]]
    swapped = [rows[1], rows[0], rows[2]]
    assert compare(expected(rows, order_by=["count"]), COLUMNS, swapped, True) == []


def test_nulls_agree():
    rows = [[None, None, None, None]]
    assert compare(expected(rows), COLUMNS, copy(rows), True) == []


# ----- differences that must be reported ------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_wrong_value_is_reported(ordered):
    rows = copy(ROWS)
    rows[1][3] = 999.5 * (1 + 1e-7)
    differences = compare(expected(ROWS), COLUMNS, rows, ordered)
    assert differences
    assert any("999.5" in difference for difference in differences), differences


def test_one_row_missing_from_a_sum_is_reported():
    # Q1's sum_qty at sf 1 is about 3.8e7; one row (quantity 1) more or less must not pass.
    rows = [["a", "d", 1, 37_719_753.0]]
    assert compare(expected(rows), COLUMNS, [["a", "d", 1, 37_719_754.0]], True)


def test_wrong_integer_is_reported():
    rows = copy(ROWS)
    rows[0][2] = 4
    assert compare(expected(ROWS), COLUMNS, rows, True)


def test_wrong_string_and_date_are_reported():
    rows = copy(ROWS)
    rows[0][0] = "A"
    assert compare(expected(ROWS), COLUMNS, rows, False)
    rows = copy(ROWS)
    rows[0][1] = datetime.date(1995, 1, 1)
    assert compare(expected(ROWS), COLUMNS, rows, False)


def test_timestamp_for_a_date_is_reported():
    rows = copy(ROWS)
    rows[0][1] = datetime.datetime(1995, 1, 2)
    assert compare(expected(ROWS), COLUMNS, rows, True)


def test_number_as_string_is_reported():
    rows = copy(ROWS)
    rows[2][3] = "10.0"
    assert compare(expected(ROWS), COLUMNS, rows, True)


@pytest.mark.parametrize("ordered", [True, False])
def test_missing_row_is_reported(ordered):
    differences = compare(expected(ROWS), COLUMNS, copy(ROWS)[:2], ordered)
    assert any("row count: expected 3, got 2" in d for d in differences), differences
    assert any("missing" in d and "'c'" in d for d in differences), differences


@pytest.mark.parametrize("ordered", [True, False])
def test_extra_and_duplicated_rows_are_reported(ordered):
    assert compare(expected(ROWS), COLUMNS, copy(ROWS) + [copy(ROWS)[0]], ordered)
    # Same count, but one row twice and another not at all: a multiset, not a set.
    rows = copy(ROWS)
    rows[2] = list(rows[1])
    assert compare(expected(ROWS), COLUMNS, rows, ordered)


def test_swapped_order_is_reported():
    rows = copy(ROWS)
    rows[0], rows[1] = rows[1], rows[0]
    differences = compare(expected(ROWS, order_by=["count"]), COLUMNS, rows, True)
    assert differences
    assert "the same rows were returned, in the wrong order" in differences


def test_swapped_order_without_order_by_keys_is_reported():
    assert compare(expected(ROWS), COLUMNS, copy(ROWS)[::-1], True)


def test_row_moved_out_of_its_tie_group_is_reported():
    rows = [["a", "d", 2, 1.0], ["b", "d", 2, 2.0], ["c", "d", 1, 3.0]]
    moved = [rows[0], rows[2], rows[1]]
    assert compare(expected(rows, order_by=["count"]), COLUMNS, moved, True)


def test_wrong_column_count_is_reported():
    rows = [row[:3] for row in ROWS]
    differences = compare(expected(ROWS), COLUMNS[:3], rows, True)
    assert differences and "column count" in differences[0], differences


def test_wrong_column_name_is_reported():
    differences = compare(expected(ROWS), ["name", "day", "cnt", "total"], copy(ROWS), True)
    assert differences == ["column 3 name: expected 'count', got 'cnt'"]


def test_wrong_type_is_reported():
    types = ["varchar", "date", "bigint", "double"]
    assert compare(expected(ROWS, types=types), COLUMNS, copy(ROWS), True, actual_types=types) == []
    assert compare(
        expected(ROWS, types=types), COLUMNS, copy(ROWS), True,
        actual_types=["varchar(25)", "date", "bigint", "double"],
    ) == []
    differences = compare(
        expected(ROWS, types=types), COLUMNS, copy(ROWS), True,
        actual_types=["varchar", "date", "bigint", "decimal(38,2)"],
    )
    assert differences == ["column 4 (total) type: expected double, got decimal(38,2)"]


def test_integers_compare_exactly_and_floats_within_tolerance():
    assert values_equal(10**15, 10**15)
    assert not values_equal(10**15, 10**15 + 1)
    assert values_equal(1e15, 1e15 + 1)  # 1e-15 relative: float noise
    assert not values_equal(1.0, 1.0 + 1e-8)
    assert values_equal(0.0, 1e-12)
    assert not values_equal(True, 1)


# ----- ORDER BY keys from the query texts -----------------------------------------------------


def test_order_by_columns_from_query_text():
    sql = "SELECT s.name, count(*) AS n FROM t s GROUP BY s.name ORDER BY n DESC, s.name LIMIT 100"
    assert order_by_columns(sql, ["name", "n"]) == ["n", "name"]
    # An ORDER BY inside a subquery or a string is not the statement's.
    assert order_by_columns("SELECT x FROM (SELECT x FROM t ORDER BY x) WHERE y = 'ORDER BY y'", ["x"]) == []
    with pytest.raises(ValueError):
        order_by_columns("SELECT x FROM t ORDER BY x + 1", ["x"])


def test_every_expected_file_matches_its_query():
    """The committed expected results carry the ORDER BY keys of the committed query texts."""
    queries = sorted((HERE / "queries").glob("q*.sql"))
    assert [q.stem for q in queries] == [f"q{n:02d}" for n in range(1, 23)]
    for query in queries:
        result = json.loads((HERE / "expected" / "sf0.01" / f"{query.stem}.json").read_text())
        assert result["order_by"] == order_by_columns(query.read_text(), result["columns"]), query
        assert result["ordered"] == bool(result["order_by"])
        assert compare(result, result["columns"], result["rows"], result["ordered"]) == []

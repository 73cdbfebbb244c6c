//! The front-end budget: pathological statements are refused quickly with a clear error, and
//! everything a user would write still parses exactly as before.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::*;
use crate::sql::{parse, Plan};

/// A sanity bound, not a speed target (those belong in benchmarks): before the budget, the
/// depth-22 statements below took seconds in a release build and the depth-40 ones would never
/// finish, so a refusal within this bound shows the exponential path is gone.
const REFUSAL_BOUND: Duration = Duration::from_secs(1);

/// `depth` copies of `open`, then `inner`, then `depth` copies of `close`, after `prefix`.
fn nested(prefix: &str, open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{prefix}{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Nesting shapes, and how many levels of [`check_nesting`]'s count each repetition adds.
const SHAPES: [(&str, &str, &str, usize); 10] = [
    ("SELECT ", "CASE WHEN a THEN ", " END", 1),
    ("SELECT ", "CASE WHEN a THEN 1 ELSE ", " END", 1),
    ("SELECT ", "CASE WHEN ", " THEN 1 END", 1),
    ("SELECT ", "(", ")", 1),
    ("SELECT ", "f(", ")", 1),
    ("SELECT ", "CAST(", " AS integer)", 1),
    ("SELECT ", "ARRAY[", "]", 1),
    ("SELECT ", "(SELECT ", ")", 2),
    ("SELECT ", "EXISTS (SELECT ", ")", 2),
    ("", "SELECT * FROM (", ")", 2),
];

#[allow(clippy::disallowed_methods)] // a test harness outside any simulation: it times real work
fn timed_parse(sql: &str) -> (Result<crate::sql::ParsedStatement, QueryFailure>, Duration) {
    let started = Instant::now(); // determinism: ok (a test timing real parsing, outside any simulation)
    let result = parse(sql);
    (result, started.elapsed())
}

#[test]
fn malformed_nested_case_and_cast_are_refused_quickly() {
    // The innermost level is malformed: each of these made sqlparser re-parse every level twice.
    for (open, close) in [("CASE WHEN a THEN ", " END"), ("CAST(", " AS integer)"), ("ARRAY[", "]")] {
        for inner in ["a a", ")", "1 THEN", "CAST("] {
            for depth in [18, 20, 22, 26, 30, 32, 33, 40] {
                let sql = nested("SELECT ", open, inner, close, depth);
                let (result, elapsed) = timed_parse(&sql);
                let error = result.expect_err(&sql);
                assert_eq!(error.code.name, "SYNTAX_ERROR", "{sql}");
                assert!(error.message.starts_with("line 1:"), "{sql}: {}", error.message);
                assert!(error.location.is_some(), "{sql}");
                if depth > NESTING_DEPTH_MAX {
                    assert!(error.message.ends_with(&format!("Expression is nested too deeply (limit {NESTING_DEPTH_MAX})")), "{}", error.message);
                }
                assert!(elapsed < REFUSAL_BOUND, "{sql}: {elapsed:?}");
            }
        }
    }
}

#[test]
fn the_budget_itself_refuses_exponential_statements_under_the_depth_limit() {
    let sql = nested("SELECT ", "CASE WHEN a THEN ", "a a", " END", NESTING_DEPTH_MAX);
    let error = parse(&sql).unwrap_err();
    assert!(error.message.contains("Statement is too complex to parse"), "{}", error.message);
    // Valid CAST nesting with a run of NOTs deep inside reaches the recursion limit, which each
    // CAST level used to retry as a function call: exponential even though nothing is malformed.
    let sql = nested("SELECT ", "CAST(", &format!("{}a", "NOT ".repeat(100)), " AS boolean)", NESTING_DEPTH_MAX);
    let (result, elapsed) = timed_parse(&sql);
    assert_eq!(result.unwrap_err().code.name, "SYNTAX_ERROR");
    assert!(elapsed < REFUSAL_BOUND, "{elapsed:?}");
}

#[test]
fn nesting_up_to_the_limit_parses_and_one_more_is_refused_where_it_starts() {
    // This runs on a test thread's 2 MiB stack, so it also shows the limit keeps the parser's
    // recursion inside a tokio worker's stack in a debug build.
    for (prefix, open, close, levels) in SHAPES {
        let inner = if prefix.is_empty() { "SELECT 1" } else { "1" };
        let repetitions_max = NESTING_DEPTH_MAX / levels;
        let sql = nested(prefix, open, inner, close, repetitions_max);
        if let Err(error) = parse(&sql) {
            assert_ne!(error.code.name, "SYNTAX_ERROR", "{sql}: {}", error.message);
        }
        let sql = nested(prefix, open, inner, close, repetitions_max + 1);
        let error = parse(&sql).unwrap_err();
        // The level past the limit starts at the repetition's bracket (or its CASE).
        let column = prefix.len() + open.len() * repetitions_max + open.find(['(', '[']).unwrap_or(0) + 1;
        assert_eq!(error.message, format!("line 1:{column}: Expression is nested too deeply (limit {NESTING_DEPTH_MAX})"), "{sql}");
        assert_eq!(error.location, Some((1, u32::try_from(column).unwrap())));
    }
}

#[test]
fn nesting_counts_case_end_and_brackets_and_nothing_else() {
    let tokens = |sql: &str| sqlparser::tokenizer::Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap();
    // Siblings do not add up: only what is open at once counts.
    let siblings = format!("SELECT {}", vec!["(CASE WHEN a THEN (1) END)"; 100].join(", "));
    assert!(check_nesting(&tokens(&siblings)).is_ok());
    // `END` outside a CASE (a column named end) closes nothing, and a stray `)` does not go negative.
    let depth_max = format!("SELECT end, ) {}1{}", "(".repeat(NESTING_DEPTH_MAX), ")".repeat(NESTING_DEPTH_MAX));
    assert!(check_nesting(&tokens(&depth_max)).is_ok());
    let too_deep = format!("SELECT {}CASE WHEN a THEN 1 END{}", "(".repeat(NESTING_DEPTH_MAX), ")".repeat(NESTING_DEPTH_MAX));
    assert!(check_nesting(&tokens(&too_deep)).is_err());
}

/// Realistic analytics SQL: TPC-H-shaped queries with a few levels of nesting.
const ANALYTICS: [&str; 6] = [
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, \
     avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY \
     GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
    "SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr FROM part, supplier, partsupp, nation, region WHERE p_partkey = ps_partkey \
     AND s_suppkey = ps_suppkey AND p_size = 15 AND p_type LIKE '%BRASS' AND ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp, \
     supplier, nation, region WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND r_name = 'EUROPE') ORDER BY s_acctbal DESC LIMIT 100",
    "SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) AS mkt_share FROM (SELECT extract(year FROM o_orderdate) \
     AS o_year, l_extendedprice * (1 - l_discount) AS volume, n2.n_name AS nation FROM part, supplier, lineitem, orders, customer, nation n1, \
     nation n2, region WHERE p_partkey = l_partkey AND o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31') AS all_nations \
     GROUP BY o_year ORDER BY o_year",
    "SELECT s_name, s_address FROM supplier, nation WHERE s_suppkey IN (SELECT ps_suppkey FROM partsupp WHERE ps_partkey IN (SELECT p_partkey \
     FROM part WHERE p_name LIKE 'forest%') AND ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem WHERE l_partkey = ps_partkey \
     AND l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1994-01-01' + INTERVAL '1' YEAR)) AND s_nationkey = n_nationkey ORDER BY s_name",
    "WITH revenue AS (SELECT l_suppkey AS supplier_no, sum(l_extendedprice * (1 - l_discount)) AS total_revenue FROM lineitem GROUP BY l_suppkey) \
     SELECT s_suppkey, s_name, total_revenue FROM supplier, revenue WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) \
     FROM revenue) AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = s_suppkey AND l3.l_suppkey <> s_suppkey) ORDER BY s_suppkey",
    "SELECT c_count, count(*) AS custdist, CASE WHEN c_count > 10 THEN CASE WHEN c_count > 20 THEN 'high' ELSE 'mid' END ELSE 'low' END AS band, \
     CAST(coalesce(max(c_count), 0) AS double), row_number() OVER (PARTITION BY c_count ORDER BY c_count) FROM (SELECT c_custkey, count(o_orderkey) \
     AS c_count FROM customer LEFT OUTER JOIN orders ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%' GROUP BY c_custkey) AS c_orders \
     GROUP BY c_count HAVING count(*) > 1 ORDER BY custdist DESC, c_count DESC",
];

/// What the previous front end accepted, GenericDialect features included.
const DIALECT_CORPUS: [&str; 12] = [
    "SELECT * FROM synthetic(run_time => '2s', memory => '64MB', tasks => 4, rows => 10)",
    "SELECT 1, 'abc' AS s, -2.5, true, NULL, 9999999999",
    "SELECT `a`, \"b\", #t, @v, x$1 FROM t",
    "SELECT * EXCEPT (a) FROM t",
    "SELECT f(a := 1), MAP {'k': 1}, STRUCT(1 AS a)",
    "SELECT a, b, FROM t GROUP BY a, b WITH ROLLUP LIMIT 1, 2",
    "SELECT a FROM t WHERE a IN (SELECT b FROM u) AND b NOT IN (1, 2) AND c BETWEEN 1 AND 2",
    "SELECT count(*) FILTER (WHERE a > 1) FROM t",
    "SELECT x FROM t START WITH a = 1 CONNECT BY PRIOR a = b",
    "FROM t SELECT a",
    "SELECT U&'\\0041', E'a\\nb' /* a /* nested */ comment */",
    "CREATE INDEX i ON t (a) WITH (fillfactor = 70)",
];

#[test]
fn the_budgeted_dialect_parses_exactly_like_generic_dialect() {
    for sql in ANALYTICS.iter().chain(DIALECT_CORPUS.iter()) {
        let generic = Parser::parse_sql(&GenericDialect {}, sql);
        let budgeted = Parser::parse_sql(&BudgetedDialect::with_budget(u64::MAX), sql);
        assert_eq!(format!("{budgeted:?}"), format!("{generic:?}"), "{sql}");
        assert!(generic.is_ok(), "the corpus should parse: {sql}: {generic:?}");
    }
}

#[test]
fn analytics_sql_parses_well_inside_the_budget() {
    for sql in ANALYTICS {
        assert_engine_statement(sql);
        let tokens = sqlparser::tokenizer::Tokenizer::new(&GenericDialect {}, sql).tokenize().unwrap();
        let token_count = tokens.iter().filter(|token| !matches!(token, Token::Whitespace(_))).count();
        let dialect = BudgetedDialect::with_budget(u64::MAX);
        Parser::parse_sql(&dialect, sql).unwrap();
        let per_token = dialect.prefix_parses() as f64 / token_count as f64;
        assert!(per_token < PREFIX_PARSES_PER_TOKEN_MAX as f64 / 4.0, "{per_token:.2} parses per token: {sql}");
    }
}

/// One level of nesting: its opening text, closing text, and how many levels it adds.
const LEVELS: [(&str, &str, usize); 10] = [
    ("(", ")", 1),
    ("CASE WHEN a THEN ", " END", 1),
    ("CASE WHEN ", " THEN 1 END", 1),
    ("CAST(", " AS integer)", 1),
    ("ARRAY[", "]", 1),
    ("f(", ")", 1),
    ("(SELECT ", ")", 2),
    ("a IN (", ")", 1),
    ("CASE WHEN a THEN (", ") END", 2),
    ("NOT ", "", 0),
];
const INNERS: [&str; 8] = ["1", "a a", ")", "1 +", "CAST(", "END", "", "(SELECT"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_nesting_never_panics_and_answers_quickly(
        levels in proptest::collection::vec(0..LEVELS.len(), 0..60),
        inner in 0..INNERS.len(),
        drop_close in proptest::option::of(0..60usize),
    ) {
        let mut closes: Vec<&str> = levels.iter().rev().map(|&level| LEVELS[level].1).collect();
        if let Some(index) = drop_close.filter(|&index| index < closes.len()) {
            closes.remove(index);
        }
        let opens: String = levels.iter().map(|&level| LEVELS[level].0).collect();
        let sql = format!("SELECT {opens}{}{}", INNERS[inner], closes.concat());
        let (result, elapsed) = timed_parse(&sql);
        prop_assert!(elapsed < REFUSAL_BOUND, "{sql}: {elapsed:?}");
        let depth: usize = levels.iter().map(|&level| LEVELS[level].2).sum();
        match result {
            Ok(_) => prop_assert!(depth <= NESTING_DEPTH_MAX, "{sql}"),
            Err(error) => {
                prop_assert!(["SYNTAX_ERROR", "NOT_SUPPORTED"].contains(&error.code.name), "{sql}: {}", error.code.name);
                if depth > NESTING_DEPTH_MAX {
                    prop_assert!(error.message.contains("nested too deeply"), "{sql}: {}", error.message);
                }
            }
        }
    }
}
#[test]
fn long_prefix_operator_runs_are_refused_not_a_stack_overflow() {
    // The pre-scan does not see `NOT NOT …` or `- - …`; the parser's recursion limit stops them,
    // before the stack (a debug build overflowed 2 MiB at about 30 NOTs under sqlparser's default
    // limit of 50). Each depth here runs on a test thread's 2 MiB stack.
    for depth in [PARSER_RECURSION_LIMIT, 30, 60, 500] {
        let error = parse(&format!("SELECT {}a", "NOT ".repeat(depth))).unwrap_err();
        assert_eq!(error.code.name, "SYNTAX_ERROR", "{depth}: {}", error.message);
    }
    assert_engine_statement("SELECT NOT NOT NOT true");
}

#[test]
fn an_exhausted_budget_fails_the_parse_and_says_where() {
    let sql = format!("SELECT {}", (0..100).map(|n| n.to_string()).collect::<Vec<_>>().join(", "));
    let dialect = BudgetedDialect::with_budget(10);
    assert!(Parser::parse_sql(&dialect, &sql).is_err());
    let location = dialect.exhausted_at().expect("the budget ran out");
    // The 11th expression, `10`, is the first refused: after "SELECT " and ten "n, " items.
    assert_eq!((location.line, location.column), (1, 8 + 3 * 10));
    let error = too_complex(location, (1, 1));
    assert_eq!(error.message, "line 1:38: Statement is too complex to parse");
    assert_eq!(error.code.name, "SYNTAX_ERROR");
    let roomy = BudgetedDialect::for_tokens(200);
    assert!(Parser::parse_sql(&roomy, &sql).is_ok());
    assert_eq!(roomy.exhausted_at(), None);
    assert!(roomy.prefix_parses() >= 100, "one per select item at least: {}", roomy.prefix_parses());
}

/// A statement the SQL engine runs (production builds) or the simulation refuses.
fn assert_engine_statement(sql: &str) {
    match parse(sql) {
        Ok(parsed) => assert!(!cfg!(madsim) && parsed.plan == Plan::Sql(sql.to_string()), "{sql}: {:?}", parsed.plan),
        Err(error) => assert!(cfg!(madsim) && error.code.name == "NOT_SUPPORTED", "{sql}: {}", error.message),
    }
}

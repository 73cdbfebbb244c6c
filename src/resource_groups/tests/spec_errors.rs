//! Every refusal names the field path and the reason.

use serde_json::{json, Value};

use super::{document, group};
use crate::resource_groups::parse_resource_groups;

fn error_of(text: &str) -> String {
    match parse_resource_groups(text, "rg.json") {
        Ok(_) => panic!("accepted: {text}"),
        Err(error) => error,
    }
}

/// A valid tree `global` → {`adhoc`, `etl`} with `extra` merged into the chosen group.
fn with_group_fields(target: &str, extra: Value) -> String {
    let field = |name: &str| if name == target { extra.clone() } else { json!({}) };
    let adhoc = group("adhoc", 10, 100, field("adhoc"));
    let etl = group("etl", 10, 100, field("etl"));
    let mut global = group("global", 20, 1000, field("global"));
    global["subGroups"] = json!([adhoc, etl]);
    document(vec![global], &["global.adhoc"])
}

fn assert_error(text: &str, expected: &str) {
    let error = error_of(text);
    assert!(error.starts_with("rg.json: "), "origin first: {error}");
    assert!(error.contains(expected), "expected {expected:?} in {error:?}");
}

#[test]
fn soft_concurrency_above_hard_names_the_path() {
    let mut second = group("second", 20, 10, json!({}));
    second["subGroups"] = json!([group("child", 10, 10, json!({ "softConcurrencyLimit": 12 }))]);
    let text = document(vec![group("first", 1, 1, json!({})), second], &["first"]);
    assert_eq!(
        error_of(&text),
        "rg.json: rootGroups[1].subGroups[0].softConcurrencyLimit: 12 is above hardConcurrencyLimit 10"
    );
}

#[test]
fn duplicate_names_are_refused() {
    let mut global = group("global", 1, 1, json!({}));
    global["subGroups"] =
        json!([group("a", 1, 1, json!({})), group("b", 1, 1, json!({})), group("a", 1, 1, json!({}))]);
    assert_error(
        &document(vec![global], &["global.b"]),
        "rootGroups[0].subGroups[2].name: duplicate name \"a\" (also rootGroups[0].subGroups[0])",
    );
    let text = document(vec![group("x", 1, 1, json!({})), group("x", 2, 2, json!({}))], &["x"]);
    assert_error(&text, "rootGroups[1].name: duplicate name \"x\"");
}

#[test]
fn cpu_limits_are_checked() {
    let period = |text: String| {
        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["cpuQuotaPeriod"] = json!("1h");
        value.to_string()
    };
    let soft_only = with_group_fields("etl", json!({ "softCpuLimit": "1h" }));
    assert_error(&period(soft_only.clone()), "rootGroups[0].subGroups[1].softCpuLimit: needs hardCpuLimit");
    assert_error(&soft_only, "rootGroups[0].subGroups[1].softCpuLimit: cpu limits need the top-level cpuQuotaPeriod");
    let hard_only = with_group_fields("global", json!({ "hardCpuLimit": "1h" }));
    assert_error(&hard_only, "rootGroups[0].hardCpuLimit: cpu limits need the top-level cpuQuotaPeriod");
    assert!(parse_resource_groups(&period(hard_only), "rg.json").is_ok());
    let above = with_group_fields("adhoc", json!({ "softCpuLimit": "2h", "hardCpuLimit": "1h" }));
    assert_error(&period(above), "rootGroups[0].subGroups[0].softCpuLimit: 2h is above hardCpuLimit 1h");
    let mut zero: Value = serde_json::from_str(&with_group_fields("adhoc", json!({}))).unwrap();
    zero["cpuQuotaPeriod"] = json!("0s");
    assert_error(&zero.to_string(), "cpuQuotaPeriod: must be longer than 0ms");
}

#[test]
fn policies_weights_and_limits_are_checked() {
    assert_error(
        &with_group_fields("adhoc", json!({ "schedulingPolicy": "round_robin" })),
        "rootGroups[0].subGroups[0].schedulingPolicy: unknown policy \"round_robin\"",
    );
    assert!(
        parse_resource_groups(&with_group_fields("adhoc", json!({ "schedulingPolicy": "WEIGHTED_FAIR" })), "x").is_ok()
    );
    for weight in [0, -3] {
        assert_error(
            &with_group_fields("etl", json!({ "schedulingWeight": weight })),
            &format!("rootGroups[0].subGroups[1].schedulingWeight: {weight} must be above 0"),
        );
    }
    for field in ["maxQueued", "hardConcurrencyLimit", "softConcurrencyLimit", "workersPerQueryLimit"] {
        assert_error(
            &with_group_fields("adhoc", json!({ field: -1 })),
            &format!("rootGroups[0].subGroups[0].{field}: -1 is negative"),
        );
    }
    assert_error(
        &with_group_fields("adhoc", json!({ "maxQueued": "10" })),
        "rootGroups[0].subGroups[0].maxQueued: expected a whole number",
    );
    assert_error(&with_group_fields("adhoc", json!({ "maxQueued": 1.5 })), "maxQueued: expected a whole number");
    assert_error(
        &with_group_fields("adhoc", json!({ "maxQueued": 3_000_000_000u64 })),
        "does not fit a 32-bit integer",
    );
    let mut qp = group("qp", 1, 1, json!({ "schedulingPolicy": "query_priority" }));
    qp["subGroups"] = json!([group("inner", 1, 1, json!({ "schedulingPolicy": "fair" }))]);
    assert_error(
        &document(vec![qp], &["qp.inner"]),
        "rootGroups[0].subGroups[0].schedulingPolicy: \"fair\" under a query_priority parent",
    );
}

#[test]
fn sizes_durations_and_percentages_are_checked() {
    assert_error(
        &with_group_fields("adhoc", json!({ "softMemoryLimit": "1 GiB" })),
        "rootGroups[0].subGroups[0].softMemoryLimit: data size",
    );
    for bad in ["1000%", "ten%", "%", "1.%"] {
        assert_error(&with_group_fields("adhoc", json!({ "softMemoryLimit": bad })), "softMemoryLimit: ");
    }
    assert!(parse_resource_groups(&with_group_fields("adhoc", json!({ "softMemoryLimit": "12.5%" })), "x").is_ok());
    assert!(parse_resource_groups(&with_group_fields("adhoc", json!({ "softMemoryLimit": "512MB" })), "x").is_ok());
    let limits = json!({ "perQueryLimits": { "executionTimeLimit": "1 hour" } });
    assert_error(
        &with_group_fields("etl", limits),
        "rootGroups[0].subGroups[1].perQueryLimits.executionTimeLimit: duration",
    );
    let limits = json!({ "perQueryLimits": { "totalMemoryLimit": "lots" } });
    assert_error(
        &with_group_fields("etl", limits),
        "rootGroups[0].subGroups[1].perQueryLimits.totalMemoryLimit: data size",
    );
    let limits = json!({ "perQueryLimits": { "cpuLimit": "1h" } });
    assert_error(
        &with_group_fields("etl", limits),
        "rootGroups[0].subGroups[1].perQueryLimits.cpuLimit: is not a known field",
    );
}

#[test]
fn required_fields_unknown_fields_and_aliases() {
    for field in ["name", "maxQueued", "hardConcurrencyLimit", "softMemoryLimit"] {
        let mut value = group("adhoc", 1, 1, json!({}));
        value.as_object_mut().unwrap().remove(field);
        assert_error(&document(vec![value], &["adhoc"]), &format!("rootGroups[0].{field}: is required"));
    }
    assert_error(
        &with_group_fields("etl", json!({ "maxRuning": 3 })),
        "rootGroups[0].subGroups[1].maxRuning: is not a known field (expected one of: name,",
    );
    assert_error(
        &with_group_fields("etl", json!({ "runningTimeLimit": "1h" })),
        "runningTimeLimit: is a Presto field fireball does not support",
    );
    let mut legacy = group("adhoc", 1, 1, json!({}));
    legacy.as_object_mut().unwrap().remove("hardConcurrencyLimit");
    legacy["maxRunning"] = json!(7);
    let spec = parse_resource_groups(&document(vec![legacy.clone()], &["adhoc"]), "x").unwrap();
    assert_eq!(spec.root_groups()[0].hard_concurrency_limit, 7, "maxRunning is the legacy name");
    legacy["hardConcurrencyLimit"] = json!(7);
    assert_error(
        &document(vec![legacy], &["adhoc"]),
        "rootGroups[0].maxRunning: set hardConcurrencyLimit or its old name maxRunning, not both",
    );
    assert_error(r#"{"rootGroups": [], "selectors": [], "extra": 1}"#, "extra: is not a known field");
    assert_error(r#"{"selectors": []}"#, "rootGroups: is required");
    assert_error(r#"{"rootGroups": []}"#, "selectors: is required");
    assert_error(r#"[]"#, "the document: expected an object");
    assert_error(
        &with_group_fields("etl", json!({ "name": "a.b" })),
        "rootGroups[0].subGroups[1].name: group name \"a.b\" contains '.'",
    );
}

#[test]
fn selectors_are_checked_against_the_tree() {
    let base = |selector: Value| {
        let mut value: Value = serde_json::from_str(&with_group_fields("adhoc", json!({}))).unwrap();
        value["selectors"] = json!([{ "group": "global.adhoc" }, selector]);
        value.to_string()
    };
    assert_error(
        &base(json!({ "group": "global.nothing" })),
        "selectors[1].group: \"global.nothing\" names no configured group: no group \"nothing\" under global",
    );
    assert_error(
        &base(json!({ "group": "other" })),
        "selectors[1].group: \"other\" names no configured group: no group \"other\" among the root groups",
    );
    assert_error(
        &base(json!({ "group": "global" })),
        "selectors[1].group: \"global\" has sub-groups; a selector must name a leaf group",
    );
    assert_error(
        &base(json!({ "group": "global.adhoc", "user": "(unclosed" })),
        "selectors[1].user: bad regex \"(unclosed\"",
    );
    assert_error(&base(json!({ "group": "global.adhoc", "source": "a(?=b)" })), "selectors[1].source: bad regex");
    assert_error(
        &base(json!({ "group": "global.adhoc", "queryType": "MERGE" })),
        "selectors[1].queryType: unknown query type \"MERGE\"",
    );
    assert_error(
        &base(json!({ "group": "global.adhoc", "clientTags": [1] })),
        "selectors[1].clientTags[0]: expected a string",
    );
    assert_error(
        &base(json!({ "group": "global.adhoc", "principal": "x" })),
        "selectors[1].principal: is a Presto field fireball does not support",
    );
    assert_error(&base(json!({ "user": "x" })), "selectors[1].group: is required");
    assert_error(
        &base(json!({ "group": "global..adhoc" })),
        "selectors[1].group: \"global..adhoc\" has an empty segment",
    );
    assert!(parse_resource_groups(&base(json!({ "group": "global.etl", "queryType": "select" })), "x").is_ok());
}

#[test]
fn selector_variables_must_resolve_once() {
    let mut root = group("root", 1, 1, json!({}));
    root["subGroups"] = json!([group("${USER}", 1, 1, json!({})), group("bi-${tool}", 1, 1, json!({}))]);
    let with = |selector: Value| json!({ "rootGroups": [root.clone()], "selectors": [selector] }).to_string();
    assert_error(
        &with(json!({ "group": "root.bi-${tool}" })),
        "selectors[0].group: unresolved variable ${tool} in \"root.bi-${tool}\" (available: ${USER}, ${SOURCE})",
    );
    assert!(
        parse_resource_groups(&with(json!({ "group": "root.bi-${tool}", "source": "jdbc#(?<tool>.*)" })), "x").is_ok()
    );
    assert!(parse_resource_groups(&with(json!({ "group": "root.${USER}" })), "x").is_ok());
    assert_error(
        &with(json!({ "group": "root.${USER}", "user": "(?<tool>.*)", "source": "(?<tool>.*)" })),
        "selectors[0].source: variable ${tool} is defined more than once",
    );
    assert_error(
        &with(json!({ "group": "root.${USER}", "user": "(?<USER>.*)" })),
        "selectors[0].user: variable ${USER} is defined more than once",
    );
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let error = error_of("{\n  \"rootGroups\": [\n    {\"name\": \"a\",,}\n  ]\n}");
    assert!(error.starts_with("rg.json: invalid JSON: "), "{error}");
    assert!(error.contains("line 3 column"), "{error}");
}

#[test]
fn a_key_given_twice_is_refused_with_its_line() {
    let file = |limits: &str| {
        format!(
            "{{\n  \"rootGroups\": [\n    {{\"name\": \"global\", \"softMemoryLimit\": \"100%\", \"maxQueued\": 10,\n     {limits}}}\n  ],\n  \"selectors\": [{{\"group\": \"global\"}}]\n}}"
        )
    };
    // serde_json alone would keep the 100 and run on it.
    let error = error_of(&file("\"hardConcurrencyLimit\": 10, \"hardConcurrencyLimit\": 100"));
    assert!(error.starts_with("rg.json: invalid JSON: duplicate key \"hardConcurrencyLimit\""), "{error}");
    assert!(error.contains("line 4 column"), "{error}");
    // The same file without the duplicate is accepted, so the refusal is the duplicate's.
    parse_resource_groups(&file("\"hardConcurrencyLimit\": 10"), "rg.json").expect("the file is otherwise valid");
}

//! The example configuration from Presto's `admin/resource-groups.rst`
//! (`resources-groups-example.json`) loads, and its documented selections hold.

use super::{queued, running, submit};
use crate::resource_groups::{
    parse_resource_groups, AdmissionPolicy, ResourceGroupManager, SchedulingPolicy, SelectionContext, SubmitOutcome,
};
use crate::sql::QueryType;

const PRESTO_EXAMPLE: &str = r#"{
  "rootGroups": [
    {
      "name": "global", "softMemoryLimit": "80%", "hardConcurrencyLimit": 100, "maxQueued": 1000,
      "schedulingPolicy": "weighted", "jmxExport": true,
      "subGroups": [
        { "name": "data_definition", "softMemoryLimit": "10%", "hardConcurrencyLimit": 5, "maxQueued": 100, "schedulingWeight": 1 },
        {
          "name": "adhoc", "softMemoryLimit": "10%", "hardConcurrencyLimit": 50, "maxQueued": 1, "schedulingWeight": 10,
          "subGroups": [
            {
              "name": "other", "softMemoryLimit": "10%", "hardConcurrencyLimit": 2, "maxQueued": 1, "schedulingWeight": 10,
              "schedulingPolicy": "weighted_fair",
              "subGroups": [ { "name": "${USER}", "softMemoryLimit": "10%", "hardConcurrencyLimit": 1, "maxQueued": 100 } ]
            },
            {
              "name": "bi-${toolname}", "softMemoryLimit": "10%", "hardConcurrencyLimit": 10, "maxQueued": 100, "schedulingWeight": 10,
              "schedulingPolicy": "weighted_fair",
              "subGroups": [ { "name": "${USER}", "softMemoryLimit": "10%", "hardConcurrencyLimit": 3, "maxQueued": 10 } ]
            }
          ]
        },
        {
          "name": "pipeline", "softMemoryLimit": "80%", "hardConcurrencyLimit": 45, "maxQueued": 100, "schedulingWeight": 1, "jmxExport": true,
          "subGroups": [ { "name": "pipeline_${USER}", "softMemoryLimit": "50%", "hardConcurrencyLimit": 5, "maxQueued": 100 } ]
        }
      ]
    },
    { "name": "admin", "softMemoryLimit": "100%", "hardConcurrencyLimit": 50, "maxQueued": 100, "schedulingPolicy": "query_priority", "jmxExport": true }
  ],
  "selectors": [
    { "user": "bob", "group": "admin" },
    { "source": ".*pipeline.*", "queryType": "DATA_DEFINITION", "group": "global.data_definition" },
    { "source": ".*pipeline.*", "group": "global.pipeline.pipeline_${USER}" },
    { "source": "jdbc#(?<toolname>.*)", "clientTags": ["hipri"], "group": "global.adhoc.bi-${toolname}.${USER}" },
    { "group": "global.adhoc.other.${USER}" }
  ],
  "cpuQuotaPeriod": "1h"
}"#;

fn manager() -> ResourceGroupManager {
    let spec = parse_resource_groups(PRESTO_EXAMPLE, "resources-groups-example.json")
        .unwrap_or_else(|error| panic!("{error}"));
    let mut manager = ResourceGroupManager::new(spec, AdmissionPolicy::Presto, 1.0, 7, 0);
    manager.set_cluster_memory_bytes(100 << 30);
    manager
}

fn context(user: &str, source: Option<&str>, tags: &[&str], query_type: Option<QueryType>) -> SelectionContext {
    SelectionContext {
        user: user.to_string(),
        source: source.map(str::to_string),
        client_tags: tags.iter().map(|tag| tag.to_string()).collect(),
        query_type,
    }
}

#[test]
fn documented_selections() {
    let manager = manager();
    let select = |context: SelectionContext| manager.select(&context).unwrap();
    // "The first selector matches queries from bob and places them in the admin group."
    assert_eq!(select(context("bob", None, &[], None)), "admin");
    assert_eq!(
        select(context("bob", Some("nightly-pipeline"), &[], Some(QueryType::DataDefinition))),
        "admin",
        "first match wins"
    );
    // DDL from a source that includes "pipeline".
    let ddl = context("alice", Some("nightly-pipeline-2"), &[], Some(QueryType::DataDefinition));
    assert_eq!(select(ddl), "global.data_definition");
    // Other queries from a pipeline source: a per-user group under global.pipeline.
    assert_eq!(
        select(context("alice", Some("pipeline"), &[], Some(QueryType::Select))),
        "global.pipeline.pipeline_alice"
    );
    // "a query with a source jdbc#powerfulbi, user kayla, and client tags hipri and fast" (the
    // docs' prose says global.pipeline.bi-...; the example file puts bi-${toolname} under adhoc).
    assert_eq!(
        select(context("kayla", Some("jdbc#powerfulbi"), &["hipri", "fast"], None)),
        "global.adhoc.bi-powerfulbi.kayla"
    );
    // Without the hipri tag, the catch-all per-user adhoc group.
    assert_eq!(select(context("kayla", Some("jdbc#powerfulbi"), &["fast"], None)), "global.adhoc.other.kayla");
    assert_eq!(select(context("carol", None, &[], Some(QueryType::Insert))), "global.adhoc.other.carol");
    // Presto's `matches()` is a full match: "bobby" is not bob.
    assert_eq!(select(context("bobby", None, &[], None)), "global.adhoc.other.bobby");
}

#[test]
fn documented_policy_holds_when_queries_arrive() {
    let mut manager = manager();
    // The per-user adhoc group runs one query; `adhoc` queues at most one in total.
    assert_eq!(submit(&mut manager, "q1", "global.adhoc.other.carol", 0), SubmitOutcome::Started);
    assert_eq!(submit(&mut manager, "q2", "global.adhoc.other.carol", 0), SubmitOutcome::Queued);
    assert_eq!(
        submit(&mut manager, "q3", "global.adhoc.other.carol", 0),
        SubmitOutcome::QueueFull("Too many queued queries for \"global.adhoc.other.carol\"".to_string())
    );
    // `other` runs two at most: a second user starts, a third waits... but adhoc's queue is full.
    assert_eq!(submit(&mut manager, "q4", "global.adhoc.other.dave", 0), SubmitOutcome::Started);
    assert!(matches!(submit(&mut manager, "q5", "global.adhoc.other.erin", 0), SubmitOutcome::QueueFull(_)));
    // BI tools: three per user.
    for query in ["b1", "b2", "b3"] {
        assert_eq!(submit(&mut manager, query, "global.adhoc.bi-powerfulbi.kayla", 0), SubmitOutcome::Started);
    }
    assert_eq!(running(&manager, "global.adhoc.bi-powerfulbi"), 3);
    assert_eq!(running(&manager, "global"), 5);
    assert_eq!(queued(&manager, "global.adhoc"), 1);
    // q1 ends: carol's queued query starts.
    assert!(manager.remove("q1"));
    assert_eq!(manager.start_eligible(1), vec![("q2".to_string(), "global.adhoc.other.carol".to_string())]);
    // Policies and forced policies.
    let policy = |manager: &ResourceGroupManager, id: &str| manager.tree.policy_of(manager.tree.by_id[id]);
    assert_eq!(policy(&manager, "global"), SchedulingPolicy::Weighted);
    assert_eq!(policy(&manager, "global.adhoc"), SchedulingPolicy::Fair);
    assert_eq!(policy(&manager, "global.adhoc.other"), SchedulingPolicy::WeightedFair);
    assert_eq!(manager.hard_concurrency_limit("admin"), Some(50));
    assert_eq!(manager.hard_concurrency_limit("global.pipeline.pipeline_zed"), Some(5), "resolved without creating it");
    assert_eq!(manager.hard_concurrency_limit("nowhere"), None);
    // A group with sub-groups takes no queries.
    assert!(
        matches!(manager.submit("q9", "global.adhoc", 1, 2), SubmitOutcome::Invalid(message) if message == "Cannot add queries to global.adhoc. It is not a leaf group.")
    );
    manager.check_invariants().unwrap();
}

//! Property-driven fuzzing of everything fireball parses from a file or the network: the
//! properties files, resource-groups and access-rules JSON, client session headers, internal
//! tokens, SQL text, and the JSON bodies nodes send each other (heartbeats applied to the RM's
//! state, announcements and replication batches to its discovery store, task requests to a
//! worker's task table). Inputs are valid documents with random
//! damage (bytes cut, replaced, inserted) and arbitrary text; each target must answer `Ok` or a
//! clear `Err` and never panic. The case counts are fixed, so `ci/test` spends a bounded time here.
//! (Deeply nested SQL has its own in `sql/guard_tests.rs`; scenario files theirs in the sim crate.)

use proptest::prelude::*;

use crate::discovery::DiscoveryStore;
use crate::memory::pool::MemoryPool;
use crate::resource_manager::cluster_state::{ClusterState, ClusterStateConfig};
use crate::security::access::{AccessControl, QueryAccess};
use crate::wire::{Announcement, NodeHeartbeat, QueryHeartbeat, ReplicationBatch, TaskRequest};
use crate::worker::tasks::TaskTable;

const CASES: u32 = 256;

use crate::fuzzing::damage;

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..8)
}

const PROPERTIES: &str = "node.environment=test\nnode.id=worker-1\ncoordinator=false\n\
    discovery.uri=http://127.0.0.1:8180\nquery.max-memory=20GB\n# a comment\nshutdown.grace-period=2m\n";

const RESOURCE_GROUPS: &str = include_str!("../scenarios/resource-groups/adhoc-etl.json");

const QUERY_HEARTBEAT: &str = r#"{"coordinator_id":"coordinator-1","coordinator_uri":"http://127.0.0.1:8080","sequence":7,
    "queries":[{"query_id":"q1","group":"global.alice","state":"RUNNING","user":"alice","source":null,"query":"SELECT 1",
    "memory_bytes":1024,"created_wall_ms":1,"error_name":null}]}"#;

const NODE_HEARTBEAT: &str = r#"{"node_id":"worker-1","role":"worker","uri":"http://127.0.0.1:8280",
    "memory":{"pool_bytes":1073741824,"reserved_bytes":1024,"blocked":false,"query_reservations":{"q1":1024}},
    "cpu":{"processors":2,"running_tasks":1,"blocked_tasks":0}}"#;

const ACCESS_RULES: &str = r#"{"queries": [{"user": "admin", "allow": ["execute", "view", "kill"]},
    {"user": "auditor", "queryOwner": "alice|bob", "allow": ["view"]}, {"allow": ["execute"]}],
    "impersonation": [{"original_user": "superset", "new_user": ".*"}],
    "catalogs": [{"catalog": "system", "allow": "none"}, {"allow": "read-only"}]}"#;

const ANNOUNCEMENT: &str = r#"{"node_id":"worker-1","role":"worker","uri":"http://127.0.0.1:8280","environment":"test","state":"ACTIVE"}"#;

const REPLICATION: &str = r#"{"from_node_id":"rm-2","entries":[{"announcement":{"node_id":"coordinator-1","role":"coordinator",
    "uri":"http://127.0.0.1:8080","environment":"test","state":"ACTIVE"},"remaining_ms":30000}]}"#;

const TASK_REQUEST: &str = r#"{"query_id":"q1","coordinator_id":"coordinator-1","task_index":0,"run_time_ms":1000,
    "memory_bytes":1048576,"peak_memory_bytes":2097152,"first_row":0,"row_count":10}"#;

const SQL: &str = include_str!("../tests/tpch/queries/q08.sql");

fn cluster_state() -> ClusterState {
    ClusterState::new(ClusterStateConfig {
        query_expiration_timeout_ms: 10_000,
        node_status_timeout_ms: 30_000,
        completed_query_expiration_ms: 600_000,
        max_completed_queries: 100,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn damaged_properties_files_are_parsed_or_refused_with_a_location(edits in edits()) {
        let text = String::from_utf8_lossy(&damage(PROPERTIES, &edits)).into_owned();
        if let Err(message) = crate::config::properties::Properties::parse(&text, "config.properties") {
            prop_assert!(message.contains("config.properties"), "{message}");
        }
    }

    #[test]
    fn damaged_properties_never_make_an_invalid_node_config(edits in edits()) {
        let text = String::from_utf8_lossy(&damage(&format!("{PROPERTIES}resource-manager-enabled=true\n"), &edits)).into_owned();
        if let Ok(properties) = crate::config::properties::Properties::parse(&text, "config.properties") {
            // Ok or a refusal with a reason; a config that builds has every interval positive.
            if let Ok(config) = crate::config::NodeConfig::from_properties(&properties) {
                prop_assert!(config.request_timeout_ms > 0 && config.announce_interval_ms > 0);
            }
        }
    }

    #[test]
    fn damaged_resource_groups_files_are_parsed_or_refused(edits in edits()) {
        let text = String::from_utf8_lossy(&damage(RESOURCE_GROUPS, &edits)).into_owned();
        if let Err(message) = crate::resource_groups::parse_resource_groups(&text, "groups.json") {
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn arbitrary_session_headers_are_taken_or_refused(name in 0..4usize, value in "\\PC{0,64}") {
        let header = ["x-presto-session", "x-trino-session", "x-presto-client-tags", "x-presto-user"][name];
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            headers.insert(header, value);
            let _ = crate::protocol::session::SessionContext::from_headers(&headers);
        }
    }

    #[test]
    fn damaged_or_arbitrary_tokens_never_verify(edits in edits(), garbage in "\\PC{0,300}") {
        use crate::security::jwt::{sign, verify, Key};
        let key = Key::from_secret("a shared secret for fuzzing");
        let token = sign(&key, "worker-1", 1_800_000_300);
        let damaged = String::from_utf8_lossy(&damage(&token, &edits)).into_owned();
        if damaged != token {
            // A changed token verifies only if the change is invisible to base64url decoding (a
            // cut padding-free tail bit), and then it names the same node.
            if let Ok(subject) = verify(&key, &damaged, 1_800_000_000, 300, 120) {
                prop_assert_eq!(subject, "worker-1");
            }
        }
        prop_assert!(verify(&key, &garbage, 1_800_000_000, 300, 120).is_err());
    }

    /// Bodies as a peer could send them, decoded as the RM's handlers do and applied: the RM's
    /// state keeps its invariants (checked inside `apply_*`) and its sums never overflow.
    #[test]
    fn damaged_heartbeats_are_refused_or_applied_safely(
        query_edits in edits(),
        node_edits in edits(),
        numbers in proptest::collection::vec(any::<u64>(), 4),
    ) {
        let mut state = cluster_state();
        if let Ok(heartbeat) = serde_json::from_slice::<QueryHeartbeat>(&damage(QUERY_HEARTBEAT, &query_edits)) {
            let _ = state.apply_query_heartbeat(heartbeat, 1);
        }
        if let Ok(mut heartbeat) = serde_json::from_slice::<NodeHeartbeat>(&damage(NODE_HEARTBEAT, &node_edits)) {
            heartbeat.memory.pool_bytes = numbers[0];
            heartbeat.memory.reserved_bytes = numbers[1];
            heartbeat.memory.query_reservations.insert("q1".into(), numbers[2]);
            heartbeat.memory.query_reservations.insert("q2".into(), numbers[3]);
            let _ = state.apply_node_heartbeat(heartbeat.clone(), 2);
            heartbeat.node_id.push('2');
            let _ = state.apply_node_heartbeat(heartbeat, 3);
        }
        let _ = state.memory(4);
        let _ = state.group_counts(None);
        prop_assert_eq!(state.check_invariants(), Ok(()));
        state.expire(1_000_000);
        prop_assert_eq!(state.check_invariants(), Ok(()));
    }

    #[test]
    fn damaged_access_rules_are_parsed_or_refused_with_their_file(edits in edits()) {
        match AccessControl::parse(&String::from_utf8_lossy(&damage(ACCESS_RULES, &edits)), "rules.json") {
            Ok(access) => {
                // Whatever the rules say, a user keeps his own queries.
                prop_assert!(access.can_access_query("alice", QueryAccess::Kill, "alice"));
            }
            Err(error) => prop_assert!(error.starts_with("rules.json"), "{}", error),
        }
    }

    /// Damaged and arbitrary SQL is planned or refused with a Presto error, never a panic.
    #[test]
    fn damaged_sql_is_parsed_or_refused(edits in edits(), garbage in "\\PC{0,200}") {
        for text in [String::from_utf8_lossy(&damage(SQL, &edits)).into_owned(), garbage] {
            if let Err(failure) = crate::sql::parse(&text) {
                prop_assert!(!failure.message.is_empty());
            }
        }
    }

    /// Announcements and replication batches as a peer could send them, applied to the RM's
    /// discovery store, and task requests to a worker's task table: both keep their invariants.
    #[test]
    fn damaged_discovery_and_task_bodies_are_refused_or_applied_safely(
        announce_edits in edits(),
        replicate_edits in edits(),
        task_edits in edits(),
        numbers in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let mut store = DiscoveryStore::new();
        if let Ok(announcement) = serde_json::from_slice::<Announcement>(&damage(ANNOUNCEMENT, &announce_edits)) {
            let _ = store.announce(announcement, 1, 30_000);
        }
        if let Ok(mut batch) = serde_json::from_slice::<ReplicationBatch>(&damage(REPLICATION, &replicate_edits)) {
            for entry in &mut batch.entries {
                entry.remaining_ms = numbers[0];
            }
            let _ = store.merge(batch.entries, 2, 30_000);
        }
        let _ = store.snapshot(u64::MAX);
        let mut table = TaskTable::new("worker-1", MemoryPool::new(1 << 30, 1 << 29), 30_000, false);
        if let Ok(mut request) = serde_json::from_slice::<TaskRequest>(&damage(TASK_REQUEST, &task_edits)) {
            request.memory_bytes = numbers[1];
            request.peak_memory_bytes = numbers[2];
            let _ = table.create(1, "q1.0.0.0", &request);
            let _ = table.grow(2, "q1.0.0.0", numbers[2]);
            prop_assert_eq!(table.check_invariants(), Ok(()));
            table.tick(u64::MAX / 2);
        }
        prop_assert_eq!(table.check_invariants(), Ok(()));
    }
}

//! Merging Presto's `ResourceGroupInfo` JSON from several coordinators into one cluster-wide
//! answer, as an RM does for `/v1/resourceGroupState` (Presto's `AggregatedResourceGroupInfoBuilder`).

use serde_json::{json, Value};

use crate::config::{format_data_size, parse_data_size_bytes};

const COUNTERS: [&str; 4] = ["numQueuedQueries", "numRunningQueries", "numAggregatedQueuedQueries", "numAggregatedRunningQueries"];

/// Sums counts and memory; limits come from the first answer (every coordinator runs the same
/// file). `state` is recomputed from the merged counts.
pub fn merge(infos: &[Value]) -> Option<Value> {
    let mut merged = infos.first()?.clone();
    for info in &infos[1..] {
        add_counts(&mut merged, info);
        let extra_subgroups = info["subGroups"].as_array().cloned().unwrap_or_default();
        let subgroups = merged["subGroups"].as_array_mut();
        if let Some(subgroups) = subgroups {
            for extra in extra_subgroups {
                match subgroups.iter_mut().find(|existing| existing["id"] == extra["id"]) {
                    Some(existing) => add_counts(existing, &extra),
                    None => subgroups.push(extra),
                }
            }
        }
    }
    recompute_state(&mut merged);
    if let Some(subgroups) = merged["subGroups"].as_array_mut() {
        subgroups.iter_mut().for_each(recompute_state);
    }
    Some(merged)
}

fn add_counts(into: &mut Value, from: &Value) {
    for key in COUNTERS {
        let sum = into[key].as_u64().unwrap_or(0) + from[key].as_u64().unwrap_or(0);
        into[key] = json!(sum);
    }
    let memory = |value: &Value| value.as_str().and_then(|text| parse_data_size_bytes(text).ok()).unwrap_or(0);
    into["memoryUsage"] = json!(format_data_size(memory(&into["memoryUsage"]) + memory(&from["memoryUsage"])));
}

fn recompute_state(info: &mut Value) {
    let running = info["numAggregatedRunningQueries"].as_u64().unwrap_or(0);
    let queued = info["numAggregatedQueuedQueries"].as_u64().unwrap_or(0);
    let hard = info["hardConcurrencyLimit"].as_u64().unwrap_or(u64::MAX);
    let max_queued = info["maxQueuedQueries"].as_u64().unwrap_or(u64::MAX);
    info["state"] = json!(if running < hard {
        "CAN_RUN"
    } else if queued < max_queued {
        "CAN_QUEUE"
    } else {
        "FULL"
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(running: u64, queued: u64, sub: &[(&str, u64)]) -> Value {
        json!({
            "id": ["global"], "state": "CAN_RUN", "hardConcurrencyLimit": 4, "maxQueuedQueries": 10,
            "memoryUsage": "1GB",
            "numRunningQueries": running, "numQueuedQueries": queued,
            "numAggregatedRunningQueries": running, "numAggregatedQueuedQueries": queued,
            "subGroups": sub.iter().map(|(name, running)| json!({
                "id": ["global", name], "hardConcurrencyLimit": 2, "maxQueuedQueries": 5, "memoryUsage": "0B",
                "numRunningQueries": running, "numQueuedQueries": 0,
                "numAggregatedRunningQueries": running, "numAggregatedQueuedQueries": 0,
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn sums_counts_and_subgroups_and_recomputes_state() {
        let merged = merge(&[info(2, 1, &[("a", 2)]), info(3, 4, &[("a", 1), ("b", 2)])]).unwrap();
        assert_eq!(merged["numRunningQueries"], 5);
        assert_eq!(merged["numQueuedQueries"], 5);
        assert_eq!(merged["memoryUsage"], "2GB");
        assert_eq!(merged["state"], "CAN_QUEUE", "5 running against a limit of 4");
        let subgroups = merged["subGroups"].as_array().unwrap();
        assert_eq!(subgroups.len(), 2);
        assert_eq!(subgroups[0]["numRunningQueries"], 3);
        assert_eq!(subgroups[0]["state"], "CAN_QUEUE");
        assert!(merge(&[]).is_none());
    }
}

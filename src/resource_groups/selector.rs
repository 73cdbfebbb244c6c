//! Choosing a query's group: the first selector that matches wins (Presto's `StaticSelector`).

use std::collections::BTreeMap;

use super::spec::{SelectorRegex, SelectorSpec};
use super::SelectionContext;

/// Presto's `MISSING_RESOURCE_GROUP_SELECTOR` message.
pub const NO_MATCHING_SELECTOR: &str = "Query did not match any selection rule";

pub(crate) fn select(selectors: &[SelectorSpec], context: &SelectionContext) -> Result<String, String> {
    for selector in selectors {
        if let Some(variables) = matching_variables(selector, context) {
            return expand(selector, &variables);
        }
    }
    Err(NO_MATCHING_SELECTOR.to_string())
}

/// The variables a matching selector binds, or `None` when it does not match.
fn matching_variables(selector: &SelectorSpec, context: &SelectionContext) -> Option<BTreeMap<String, String>> {
    let mut variables = BTreeMap::new();
    if let Some(user) = &selector.user {
        if !user.full.is_match(&context.user) {
            return None;
        }
        capture(user, &context.user, &mut variables);
    }
    // Presto matches an absent source as the empty string.
    let source = context.source.as_deref().unwrap_or("");
    if let Some(regex) = &selector.source {
        if !regex.full.is_match(source) {
            return None;
        }
        capture(regex, source, &mut variables);
    }
    if !selector.client_tags.iter().all(|tag| context.client_tags.contains(tag)) {
        return None;
    }
    if selector.query_type.is_some_and(|query_type| context.query_type != Some(query_type)) {
        return None;
    }
    variables.entry("USER".to_string()).or_insert_with(|| context.user.clone());
    variables.entry("SOURCE".to_string()).or_insert_with(|| source.to_string());
    Some(variables)
}

fn capture(regex: &SelectorRegex, text: &str, variables: &mut BTreeMap<String, String>) {
    let Some(captures) = regex.search.captures(text) else { return };
    for name in &regex.variables {
        if let Some(value) = captures.name(name) {
            variables.insert(name.clone(), value.as_str().to_string());
        }
    }
}

/// Expands the selector's group. fireball ids are dotted strings on the wire, so a `.` inside a
/// value (user `john.doe`) becomes `_`; Presto keeps segments as a list and needs no such rule.
fn expand(selector: &SelectorSpec, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let safe: BTreeMap<String, String> =
        variables.iter().map(|(name, value)| (name.clone(), value.replace('.', "_"))).collect();
    let mut id = String::new();
    for segment in &selector.group.segments {
        let expanded = segment.expand(&safe);
        if expanded.is_empty() {
            return Err(format!(
                "Empty segment in resource group id: {:?} expands {:?} to nothing",
                selector.group.to_dotted(),
                segment.as_str()
            ));
        }
        if !id.is_empty() {
            id.push('.');
        }
        id.push_str(&expanded);
    }
    debug_assert_eq!(id.split('.').count(), selector.group.segments.len());
    Ok(id)
}

//! Who may run, see and kill which queries: Trino's file-based access control
//! (`etc/access-control.properties` with `access-control.name=file` and `security.config-file=`
//! naming a rules JSON), its `queries` and `catalogs` rules. Pure: the handlers ask, this answers.
//!
//! Rules are tried in order and the first that matches decides, as in Trino. A `queries` rule
//! has optional `user` and `queryOwner` patterns (whole-string regexes) and `allow`, a list of
//! `execute`, `view` and `kill`; a rule with `queryOwner` cannot grant `execute`. A user may always
//! see and kill his own queries. Without rules — no file, or no `queries` section — a user may
//! run queries and see and kill only his own: unlike Trino, whose default allows everything,
//! because anyone who could reach a node could otherwise read every user's SQL and kill it.
//! A `system_information` rule (`user`, `allow`: `read`, `write`) with `write` makes a user an
//! administrator: with PASSWORD authentication he may stop a node (`PUT /v1/info/state`), which
//! otherwise only the cluster's own nodes (the shared secret) may. Reading stays open.
//! An `impersonation` rule (`original_user`, `new_user`, `allow`: true by default) lets an
//! authenticated user run queries as another (`X-Presto-User` naming someone else); without one,
//! nobody may. A `catalogs` rule has `user` and `catalog` patterns and `allow` (`all`, `read-only`, `none`, or
//! true / false); without a `catalogs` section every catalog is allowed. fireball's SQL is
//! read-only, so `read-only` and `all` grant the same.
//!
//! Sections fireball does not enforce (schemas, tables, group-based rules…) are refused rather
//! than ignored: a rules file that seems to protect something must protect it.

use regex::Regex;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryAccess {
    Execute,
    View,
    Kill,
}

impl QueryAccess {
    fn name(self) -> &'static str {
        match self {
            QueryAccess::Execute => "execute",
            QueryAccess::View => "view",
            QueryAccess::Kill => "kill",
        }
    }
}

#[derive(Clone, Debug)]
struct QueryRule {
    user: Option<Regex>,
    owner: Option<Regex>,
    allow: Vec<QueryAccess>,
}

#[derive(Clone, Debug)]
struct CatalogRule {
    user: Option<Regex>,
    catalog: Option<Regex>,
    allowed: bool,
}

#[derive(Clone, Debug)]
struct ImpersonationRule {
    original: Option<Regex>,
    new: Option<Regex>,
    allowed: bool,
}

#[derive(Clone, Debug)]
struct SystemRule {
    user: Option<Regex>,
    write: bool,
}

#[derive(Clone, Debug, Default)]
pub struct AccessControl {
    system_rules: Vec<SystemRule>,
    impersonation_rules: Vec<ImpersonationRule>,
    /// `None`: no `queries` section (each user has his own queries only).
    query_rules: Option<Vec<QueryRule>>,
    /// `None`: no `catalogs` section (every catalog).
    catalog_rules: Option<Vec<CatalogRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    queries: Option<Vec<QueryRuleJson>>,
    impersonation: Option<Vec<ImpersonationRuleJson>>,
    system_information: Option<Vec<SystemRuleJson>>,
    catalogs: Option<Vec<CatalogRuleJson>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRuleJson {
    user: Option<String>,
    #[serde(rename = "queryOwner")]
    query_owner: Option<String>,
    allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemRuleJson {
    user: Option<String>,
    allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImpersonationRuleJson {
    original_user: Option<String>,
    new_user: Option<String>,
    #[serde(default = "allowed_by_default")]
    allow: bool,
}

fn allowed_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogRuleJson {
    user: Option<String>,
    catalog: Option<String>,
    allow: serde_json::Value,
}

/// Each rule of one section, checked by `rule` (given `FILE: section[i]` to name it in errors);
/// `None` when the file has no such section.
fn section<J, R>(rules: Option<Vec<J>>, origin: &str, name: &str, rule: impl Fn(&str, J) -> Result<R, String>) -> Result<Option<Vec<R>>, String> {
    rules
        .map(|rules| rules.into_iter().enumerate().map(|(index, json)| rule(&format!("{origin}: {name}[{index}]"), json)).collect())
        .transpose()
}

fn pattern(origin: &str, what: &str, text: Option<String>) -> Result<Option<Regex>, String> {
    text.map(|text| {
        Regex::new(&format!("^(?:{text})$")).map_err(|error| format!("{origin}: {what} {text:?} is not a valid regex: {error}"))
    })
    .transpose()
}

impl AccessControl {
    /// Parses a rules JSON; `origin` (its path) names it in every error.
    pub fn parse(json: &str, origin: &str) -> Result<AccessControl, String> {
        let file: RulesFile = serde_json::from_str(json).map_err(|error| {
            format!(
                "{origin}:{}:{}: {error} (fireball enforces the `queries`, `catalogs`, `impersonation` and \
                 `system_information` sections of Trino's rules file)",
                error.line(),
                error.column()
            )
        })?;
        let query_rules = section(file.queries, origin, "queries", |at, rule| {
            let allow = rule
                .allow
                .iter()
                .map(|name| match name.as_str() {
                    "execute" => Ok(QueryAccess::Execute),
                    "view" => Ok(QueryAccess::View),
                    "kill" => Ok(QueryAccess::Kill),
                    other => Err(format!("{at}: allow {other:?} is not one of execute, view, kill")),
                })
                .collect::<Result<Vec<_>, String>>()?;
            if rule.query_owner.is_some() && allow.contains(&QueryAccess::Execute) {
                return Err(format!("{at}: a rule with queryOwner cannot allow execute"));
            }
            Ok(QueryRule { user: pattern(at, "user", rule.user)?, owner: pattern(at, "queryOwner", rule.query_owner)?, allow })
        })?;
        let catalog_rules = section(file.catalogs, origin, "catalogs", |at, rule| {
            let allowed = match &rule.allow {
                serde_json::Value::Bool(allowed) => *allowed,
                serde_json::Value::String(text) if text == "all" || text == "read-only" => true,
                serde_json::Value::String(text) if text == "none" => false,
                other => return Err(format!("{at}: allow {other} is not one of \"all\", \"read-only\", \"none\", true, false")),
            };
            Ok(CatalogRule { user: pattern(at, "user", rule.user)?, catalog: pattern(at, "catalog", rule.catalog)?, allowed })
        })?;
        let impersonation_rules = section(file.impersonation, origin, "impersonation", |at, rule| {
            Ok(ImpersonationRule {
                original: pattern(at, "original_user", rule.original_user)?,
                new: pattern(at, "new_user", rule.new_user)?,
                allowed: rule.allow,
            })
        })?
        .unwrap_or_default();
        let system_rules = section(file.system_information, origin, "system_information", |at, rule| {
            if let Some(other) = rule.allow.iter().find(|name| *name != "read" && *name != "write") {
                return Err(format!("{at}: allow {other:?} is not one of read, write"));
            }
            Ok(SystemRule { user: pattern(at, "user", rule.user)?, write: rule.allow.iter().any(|name| name == "write") })
        })?
        .unwrap_or_default();
        Ok(AccessControl { system_rules, impersonation_rules, query_rules, catalog_rules })
    }

    /// May `user` run queries at all?
    pub fn can_execute(&self, user: &str) -> bool {
        let Some(rules) = &self.query_rules else { return true };
        rules
            .iter()
            .filter(|rule| rule.owner.is_none())
            .find(|rule| matches(&rule.user, user))
            .is_some_and(|rule| rule.allow.contains(&QueryAccess::Execute))
    }

    /// May `user` see (or kill) a query `owner` runs? His own, always.
    pub fn can_access_query(&self, user: &str, access: QueryAccess, owner: &str) -> bool {
        debug_assert_ne!(access, QueryAccess::Execute, "execute is asked with can_execute");
        if user == owner {
            return true;
        }
        let Some(rules) = &self.query_rules else { return false };
        rules
            .iter()
            .find(|rule| matches(&rule.user, user) && matches(&rule.owner, owner))
            .is_some_and(|rule| rule.allow.contains(&access))
    }

    /// Is `user` an administrator (may stop nodes)?
    pub fn can_write_system_information(&self, user: &str) -> bool {
        self.system_rules.iter().find(|rule| matches(&rule.user, user)).is_some_and(|rule| rule.write)
    }

    /// May the authenticated `principal` run queries as `user`?
    pub fn can_impersonate(&self, principal: &str, user: &str) -> bool {
        principal == user
            || self
                .impersonation_rules
                .iter()
                .find(|rule| matches(&rule.original, principal) && matches(&rule.new, user))
                .is_some_and(|rule| rule.allowed)
    }

    /// May `user` read from `catalog`?
    pub fn can_access_catalog(&self, user: &str, catalog: &str) -> bool {
        let Some(rules) = &self.catalog_rules else { return true };
        rules.iter().find(|rule| matches(&rule.user, user) && matches(&rule.catalog, catalog)).is_some_and(|rule| rule.allowed)
    }

    /// Presto's message for a refused query access.
    pub fn denied_message(access: QueryAccess, owner: &str) -> String {
        format!("Access Denied: Cannot {} query owned by {owner}", access.name())
    }
}

fn matches(pattern: &Option<Regex>, value: &str) -> bool {
    pattern.as_ref().is_none_or(|pattern| pattern.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"{
        "queries": [
            { "user": "admin", "allow": ["execute", "view", "kill"] },
            { "user": "auditor", "queryOwner": "alice|bob", "allow": ["view"] },
            { "user": "banned", "allow": [] },
            { "allow": ["execute"] }
        ],
        "impersonation": [
            { "original_user": "superset", "new_user": "admin", "allow": false },
            { "original_user": "superset", "new_user": ".*" }
        ],
        "catalogs": [
            { "user": "admin", "allow": "all" },
            { "catalog": "system", "allow": "none" },
            { "allow": "read-only" }
        ],
        "system_information": [
            { "user": "admin", "allow": ["read", "write"] },
            { "allow": ["read"] }
        ]
    }"#;

    #[test]
    fn without_rules_a_user_has_his_own_queries_only() {
        let access = AccessControl::default();
        assert!(access.can_execute("alice"));
        assert!(access.can_access_query("alice", QueryAccess::Kill, "alice"));
        assert!(!access.can_access_query("mallory", QueryAccess::Kill, "alice"));
        assert!(!access.can_access_query("mallory", QueryAccess::View, "alice"));
        assert!(access.can_access_catalog("mallory", "tpch"));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let access = AccessControl::parse(RULES, "rules.json").unwrap();
        assert!(access.can_access_query("admin", QueryAccess::Kill, "alice"));
        assert!(access.can_access_query("auditor", QueryAccess::View, "bob"));
        assert!(!access.can_access_query("auditor", QueryAccess::Kill, "bob"), "view only");
        assert!(!access.can_access_query("auditor", QueryAccess::View, "carol"), "not his owners");
        assert!(!access.can_access_query("alicex", QueryAccess::View, "alice"), "patterns match whole names");
        assert!(access.can_access_query("banned", QueryAccess::View, "banned"), "his own, always");
        assert!(!access.can_execute("banned"));
        assert!(access.can_execute("auditor"), "owner rules do not decide execute");
        assert!(access.can_execute("anyone"));
        assert!(access.can_access_catalog("admin", "system"));
        assert!(!access.can_access_catalog("alice", "system"));
        assert!(access.can_access_catalog("alice", "tpch"));
        assert!(access.can_impersonate("superset", "alice"));
        assert!(!access.can_impersonate("superset", "admin"), "the first matching rule denies");
        assert!(!access.can_impersonate("alice", "bob"));
        assert!(AccessControl::default().can_impersonate("alice", "alice"));
        assert!(!AccessControl::default().can_impersonate("alice", "bob"));
        assert!(access.can_write_system_information("admin"));
        assert!(!access.can_write_system_information("alice"));
        assert!(!AccessControl::default().can_write_system_information("admin"), "no rules, no administrators");
    }

    #[test]
    fn bad_rules_are_refused_with_where() {
        for (json, expected) in [
            (r#"{"queries": [{"allow": ["drop"]}]}"#, "queries[0]: allow \"drop\""),
            (r#"{"queries": [{"queryOwner": "a", "allow": ["execute"]}]}"#, "queries[0]: a rule with queryOwner"),
            (r#"{"queries": [{"user": "(", "allow": []}]}"#, "queries[0]: user \"(\" is not a valid regex"),
            (r#"{"catalogs": [{"allow": "some"}]}"#, "catalogs[0]: allow \"some\""),
            (r#"{"system_information": [{"allow": ["shutdown"]}]}"#, "system_information[0]: allow \"shutdown\""),
            (r#"{"tables": []}"#, "rules.json:1:"),
            (r#"{"queries": [{"group": "x", "allow": []}]}"#, "unknown field `group`"),
            ("{", "rules.json:1:"),
        ] {
            let error = AccessControl::parse(json, "rules.json").unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}

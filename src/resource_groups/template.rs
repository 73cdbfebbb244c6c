//! Group-name templates: `adhoc`, `${USER}`, `bi-${toolname}`.
//!
//! A template is literal text with `${NAME}` variables (NAME = a letter then letters or digits,
//! as Presto's `ResourceGroupNameTemplate`); anything else, including a lone `${`, is literal.
//! A selector's `group` is a dotted list of templates.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

#[derive(Clone, Debug)]
pub struct NameTemplate {
    text: String,
    parts: Vec<Part>,
    /// Matches every segment this template can expand to; `None` when it has no variables.
    pattern: Option<Regex>,
}

impl PartialEq for NameTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl NameTemplate {
    /// Parses one segment. Names may not be empty or contain `.`: fireball ids are dotted strings.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a group name may not be empty".to_string());
        }
        if text.contains('.') {
            return Err(format!("group name {text:?} contains '.', which separates id segments"));
        }
        let parts = split_parts(text);
        let pattern = if parts.iter().any(|part| matches!(part, Part::Variable(_))) {
            let mut source = String::from(r"\A");
            for part in &parts {
                match part {
                    Part::Literal(literal) => source.push_str(&regex::escape(literal)),
                    Part::Variable(_) => source.push_str("(?s:.*)"),
                }
            }
            source.push_str(r"\z");
            Some(Regex::new(&source).map_err(|error| format!("internal: template pattern: {error}"))?)
        } else {
            None
        };
        Ok(NameTemplate { text: text.to_string(), parts, pattern })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_static(&self) -> bool {
        self.pattern.is_none()
    }

    pub fn variables(&self) -> BTreeSet<&str> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Variable(name) => Some(name.as_str()),
                Part::Literal(_) => None,
            })
            .collect()
    }

    /// Expands the variables; a missing variable expands to "" (validation prevents that).
    pub fn expand(&self, variables: &BTreeMap<String, String>) -> String {
        let mut expanded = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => expanded.push_str(literal),
                Part::Variable(name) => expanded.push_str(variables.get(name).map_or("", String::as_str)),
            }
        }
        expanded
    }

    /// Whether some expansion of this template equals `segment`.
    pub fn could_produce(&self, segment: &str) -> bool {
        match &self.pattern {
            None => self.text == segment,
            Some(pattern) => pattern.is_match(segment),
        }
    }
}

fn split_parts(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let name_len = variable_name_len(after);
        if name_len > 0 && after[name_len..].starts_with('}') {
            literal.push_str(&rest[..start]);
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Variable(after[..name_len].to_string()));
            rest = &after[name_len + 1..];
        } else {
            literal.push_str(&rest[..start + 2]);
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    parts
}

/// Length of a `[a-zA-Z][a-zA-Z0-9]*` prefix (Presto's variable-name rule), 0 if none.
pub fn variable_name_len(text: &str) -> usize {
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, first)) if first.is_ascii_alphabetic() => {}
        _ => return 0,
    }
    chars.find(|(_, c)| !c.is_ascii_alphanumeric()).map_or(text.len(), |(index, _)| index)
}

/// A selector's dotted `group`: `global.adhoc.bi-${toolname}.${USER}`.
#[derive(Clone, Debug)]
pub struct IdTemplate {
    pub segments: Vec<NameTemplate>,
}

impl IdTemplate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let segments = text
            .split('.')
            .map(|segment| {
                if segment.is_empty() {
                    Err(format!("{text:?} has an empty segment"))
                } else {
                    NameTemplate::parse(segment)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IdTemplate { segments })
    }

    pub fn variables(&self) -> BTreeSet<&str> {
        self.segments.iter().flat_map(NameTemplate::variables).collect()
    }

    pub fn to_dotted(&self) -> String {
        self.segments.iter().map(NameTemplate::as_str).collect::<Vec<_>>().join(".")
    }

    /// Whether some expansion equals these id segments (each variable matched independently).
    pub fn could_produce(&self, segments: &[&str]) -> bool {
        self.segments.len() == segments.len()
            && self.segments.iter().zip(segments).all(|(template, segment)| template.could_produce(segment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variables_and_keeps_odd_text_literal() {
        let template = NameTemplate::parse("bi-${toolname}").unwrap();
        assert_eq!(template.variables().into_iter().collect::<Vec<_>>(), vec!["toolname"]);
        let variables = BTreeMap::from([("toolname".to_string(), "powerfulbi".to_string())]);
        assert_eq!(template.expand(&variables), "bi-powerfulbi");
        assert!(template.could_produce("bi-powerfulbi"));
        assert!(!template.could_produce("xbi-powerfulbi"));

        let odd = NameTemplate::parse("a${-b}${").unwrap();
        assert!(odd.is_static(), "no well-formed variable: {odd:?}");
        assert!(odd.could_produce("a${-b}${"));
        assert!(NameTemplate::parse("a.b").unwrap_err().contains("'.'"));
        assert!(NameTemplate::parse("").is_err());
    }

    #[test]
    fn id_templates_split_on_dots() {
        let template = IdTemplate::parse("global.adhoc.${USER}").unwrap();
        assert_eq!(template.to_dotted(), "global.adhoc.${USER}");
        assert!(template.could_produce(&["global", "adhoc", "alice"]));
        assert!(!template.could_produce(&["global", "adhoc"]));
        assert!(IdTemplate::parse("global..x").unwrap_err().contains("empty segment"));
    }
}

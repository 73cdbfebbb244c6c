//! Java-style `.properties` files as Presto uses them (`key=value`, `#`/`!` comments), keeping
//! where each key came from so that errors can name the file and line.

use std::collections::BTreeMap;
use std::path::Path;

/// Where a property was set: `etc/config.properties:12`, or a description for generated configs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Properties {
    entries: BTreeMap<String, (String, Origin)>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a properties file; a missing or unreadable file is an error naming the path.
    pub fn read(path: &Path) -> Result<Properties, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Properties::parse(&text, &path.display().to_string())
    }

    /// Parses properties text. Duplicate keys are refused: Presto would silently take the last one,
    /// which hides mistakes in hand-edited files.
    pub fn parse(text: &str, file: &str) -> Result<Properties, String> {
        let mut properties = Properties::new();
        for (index, raw_line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let split = line.find(['=', ':']).ok_or_else(|| {
                format!("{file}:{line_number}: expected `name=value`, found {line:?}")
            })?;
            let key = line[..split].trim();
            let value = line[split + 1..].trim();
            if key.is_empty() {
                return Err(format!("{file}:{line_number}: property name is empty"));
            }
            let origin = Origin { file: file.to_string(), line: line_number };
            if let Some((_, first)) = properties.entries.get(key) {
                return Err(format!("{origin}: property {key:?} is set twice (first at {first})"));
            }
            properties.entries.insert(key.to_string(), (value.to_string(), origin));
        }
        Ok(properties)
    }

    /// Sets a property programmatically (used by `fireball local` and the simulator).
    pub fn set(&mut self, key: &str, value: impl Into<String>, origin: &str) {
        self.entries.insert(key.to_string(), (value.into(), Origin { file: origin.to_string(), line: 0 }));
    }

    pub fn get(&self, key: &str) -> Option<(&str, &Origin)> {
        self.entries.get(key).map(|(value, origin)| (value.as_str(), origin))
    }

    pub fn keys(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.entries.iter().map(|(key, (_, origin))| (key.as_str(), origin))
    }

    /// Merges `other` into `self`; a key present in both is an error naming both places.
    pub fn merge(&mut self, other: Properties) -> Result<(), String> {
        for (key, (value, origin)) in other.entries {
            if let Some((_, first)) = self.entries.get(&key) {
                return Err(format!("{origin}: property {key:?} is already set at {first}"));
            }
            self.entries.insert(key, (value, origin));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_separators() {
        let text = "# comment\n! also\n\ncoordinator=true\nhttp-server.http.port : 8080\n";
        let properties = Properties::parse(text, "config.properties").unwrap();
        assert_eq!(properties.get("coordinator").unwrap().0, "true");
        let (port, origin) = properties.get("http-server.http.port").unwrap();
        assert_eq!(port, "8080");
        assert_eq!(origin.to_string(), "config.properties:5");
    }

    #[test]
    fn refuses_garbage_with_location() {
        let error = Properties::parse("a=1\nnot a property\n", "x.properties").unwrap_err();
        assert!(error.starts_with("x.properties:2:"), "{error}");
        let error = Properties::parse("a=1\na=2\n", "x.properties").unwrap_err();
        assert!(error.contains("x.properties:2") && error.contains("x.properties:1"), "{error}");
        let error = Properties::parse("=1\n", "x.properties").unwrap_err();
        assert!(error.contains("empty"), "{error}");
    }
}

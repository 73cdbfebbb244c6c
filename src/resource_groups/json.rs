//! Reading a JSON object field by field, so every error names the field's path
//! (`rootGroups[1].subGroups[0].maxQueued: -1 is negative`). serde's derive would give
//! "invalid type ... at line 9 column 3" without saying which group it was.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `text` as JSON, refusing an object that names a key twice. serde_json keeps the last
/// value silently, so an operator's file with `"hardConcurrencyLimit"` written twice would run on
/// whichever came last; Presto's Jackson setup refuses it. The error carries line and column.
pub(crate) fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|strict| strict.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value).map(Value::Number).ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 40 {
        format!("{}…", &text[..text.char_indices().nth(40).map_or(text.len(), |(index, _)| index)])
    } else {
        text
    }
}

/// One JSON object at `path`, checked against the fields it may have.
pub(crate) struct Object<'a> {
    pub(crate) path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// `hints` names fields Presto knows that fireball does not support, for a better message.
    pub(crate) fn new(value: &'a Value, path: &str, allowed: &[&str], hints: &[&str]) -> Result<Self, String> {
        let shown = if path.is_empty() { "the document" } else { path };
        let Value::Object(map) = value else {
            return Err(format!("{shown}: expected an object, found {}", describe(value)));
        };
        for key in map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let why = if hints.contains(&key.as_str()) {
                "is a Presto field fireball does not support".to_string()
            } else {
                format!("is not a known field (expected one of: {})", allowed.join(", "))
            };
            return Err(format!("{}: {why}", join(path, key)));
        }
        Ok(Object { path: path.to_string(), map })
    }

    pub(crate) fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A present, non-null field (Jackson reads `null` as an absent optional too).
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    pub(crate) fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, String> {
        value.ok_or_else(|| format!("{}: is required", self.path_of(key)))
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(format!("{}: expected a string, found {}", self.path_of(key), describe(other))),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(format!("{}: expected true or false, found {}", self.path_of(key), describe(other))),
        }
    }

    /// A whole number that fits Java's `int`, as Presto's fields are.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, String> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match value.as_i64() {
            Some(number) if i32::try_from(number).is_ok() => Ok(Some(number)),
            Some(number) => Err(format!("{}: {number} does not fit a 32-bit integer", self.path_of(key))),
            None => Err(format!("{}: expected a whole number, found {}", self.path_of(key), describe(value))),
        }
    }

    /// A limit: a whole number, not negative.
    pub(crate) fn count(&self, key: &str) -> Result<Option<u32>, String> {
        match self.int(key)? {
            None => Ok(None),
            Some(number) if number < 0 => Err(format!("{}: {number} is negative", self.path_of(key))),
            Some(number) => Ok(Some(number as u32)),
        }
    }

    pub(crate) fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(format!("{}: expected a list, found {}", self.path_of(key), describe(other))),
        }
    }

    pub(crate) fn duration_ms(&self, key: &str) -> Result<Option<u64>, String> {
        self.string(key)?
            .map(|text| {
                crate::config::parse_duration_ms(text).map_err(|error| format!("{}: {error}", self.path_of(key)))
            })
            .transpose()
    }

    pub(crate) fn data_size_bytes(&self, key: &str) -> Result<Option<u64>, String> {
        self.string(key)?
            .map(|text| {
                crate::config::parse_data_size_bytes(text).map_err(|error| format!("{}: {error}", self.path_of(key)))
            })
            .transpose()
    }
}

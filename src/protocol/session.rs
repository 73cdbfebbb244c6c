//! The request headers of the Presto client protocol, in either dialect: clients send
//! `X-Presto-*` (prestodb, PyHive, the Java CLI) or `X-Trino-*` (the trino client). We read
//! whichever the client used, like Trino's `ProtocolHeaders.detectProtocol`.

use axum::http::HeaderMap;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderDialect {
    Presto,
    Trino,
}

impl HeaderDialect {
    fn prefix(self) -> &'static str {
        match self {
            HeaderDialect::Presto => "x-presto-",
            HeaderDialect::Trino => "x-trino-",
        }
    }
}

/// Who is asking and how: what the coordinator needs from the headers of `POST /v1/statement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionContext {
    pub dialect: HeaderDialect,
    pub user: String,
    pub source: Option<String>,
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub client_tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

const HEADER_VALUE_BYTES_MAX: usize = 8 * 1024;
const SESSION_PROPERTIES_MAX: usize = 256;

impl SessionContext {
    /// Reads the session from request headers; the error is the 400 message the client gets.
    pub fn from_headers(headers: &HeaderMap) -> Result<SessionContext, String> {
        let dialect = if headers.keys().any(|name| name.as_str().starts_with("x-trino-")) {
            HeaderDialect::Trino
        } else {
            HeaderDialect::Presto
        };
        let get = |suffix: &str| -> Result<Option<String>, String> {
            let name = format!("{}{suffix}", dialect.prefix());
            match headers.get(&name) {
                None => Ok(None),
                Some(value) => {
                    if value.len() > HEADER_VALUE_BYTES_MAX {
                        return Err(format!("header {name} is longer than {HEADER_VALUE_BYTES_MAX} bytes"));
                    }
                    let text = value.to_str().map_err(|_| format!("header {name} is not valid text"))?;
                    let text = text.trim();
                    Ok(if text.is_empty() { None } else { Some(text.to_string()) })
                }
            }
        };
        let user = get("user")?.ok_or_else(|| "User must be set".to_string())?;
        let catalog = get("catalog")?;
        let schema = get("schema")?;
        if schema.is_some() && catalog.is_none() {
            return Err("Schema is set but catalog is not".into());
        }
        let client_tags = get("client-tags")?
            .map(|tags| tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        let mut properties = BTreeMap::new();
        let session_header = format!("{}session", dialect.prefix());
        for value in headers.get_all(&session_header) {
            let text = value.to_str().map_err(|_| format!("header {session_header} is not valid text"))?;
            for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("Invalid {session_header} header: {pair:?} is not name=value"))?;
                let name = name.trim();
                if name.is_empty() {
                    return Err(format!("Invalid {session_header} header: empty property name"));
                }
                if properties.len() >= SESSION_PROPERTIES_MAX {
                    return Err(format!("Too many session properties (at most {SESSION_PROPERTIES_MAX})"));
                }
                let value = percent_decode(value.trim())
                    .map_err(|reason| format!("Invalid {session_header} header: property {name}: {reason}"))?;
                properties.insert(name.to_string(), value);
            }
        }
        Ok(SessionContext { dialect, user, source: get("source")?, catalog, schema, client_tags, properties })
    }
}

/// Clients URL-encode session property values (prestodb and trino both do), form-style: `%XX`
/// escapes and `+` for a space. A raw `&` or `=` inside a value is kept as it came.
///
/// A `%` not followed by two hex digits, or bytes that are not UTF-8 once decoded, cannot come
/// from a client that encoded its value: refused (the error says why) rather than guessed at — a
/// value silently changed on the way in is worse than a clear 400.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    for (index, _) in text.match_indices('%') {
        if !bytes.get(index + 1..index + 3).is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
            let shown: String = text[index..].chars().take(3).collect();
            return Err(format!("{shown:?} is not a valid percent-escape (send a literal % as %25)"));
        }
    }
    // `+` is a space only where the client wrote it; an encoded plus (`%2B`) decodes after this.
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| "the value is not UTF-8 once decoded".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_either_dialect() {
        let presto = SessionContext::from_headers(&headers(&[("x-presto-user", "alice"), ("x-presto-source", "cli")])).unwrap();
        assert_eq!((presto.dialect, presto.user.as_str(), presto.source.as_deref()), (HeaderDialect::Presto, "alice", Some("cli")));
        let trino = SessionContext::from_headers(&headers(&[
            ("x-trino-user", "bob"),
            ("x-trino-client-tags", "a, b"),
            ("x-trino-session", "query_priority=3,x=a%20b"),
            ("x-trino-session", "y=1"),
        ]))
        .unwrap();
        assert_eq!(trino.dialect, HeaderDialect::Trino);
        assert_eq!(trino.client_tags, vec!["a", "b"]);
        assert_eq!(trino.properties.get("query_priority").map(String::as_str), Some("3"));
        assert_eq!(trino.properties.get("x").map(String::as_str), Some("a b"));
        assert_eq!(trino.properties.get("y").map(String::as_str), Some("1"));
    }

    #[test]
    fn property_values_are_url_decoded_and_nothing_is_lost() {
        for (encoded, decoded) in [
            ("a%20b", "a b"),
            ("a+b", "a b"),
            ("x%3Dy%26z", "x=y&z"),
            ("x=y", "x=y"),
            ("a&b=c&&", "a&b=c&&"),
            ("%E2%82%AC", "\u{20ac}"),
            ("100%25", "100%"),
            ("%EF%BF%BD", "\u{fffd}"),
            ("", ""),
        ] {
            assert_eq!(percent_decode(encoded).as_deref(), Ok(decoded), "{encoded:?}");
        }
        for malformed in ["100%", "%zz", "a%2", "%FF", "ok%C3"] {
            assert!(percent_decode(malformed).is_err(), "{malformed:?} was accepted");
        }
        let session = SessionContext::from_headers(&headers(&[("x-presto-user", "a"), ("x-presto-session", "p=x%3Dy+z")])).unwrap();
        assert_eq!(session.properties.get("p").map(String::as_str), Some("x=y z"));
    }

    #[test]
    fn a_malformed_property_value_refuses_the_header_naming_the_property() {
        for (value, reason) in [("p=%zz", "\"%zz\" is not a valid percent-escape"), ("p=%FF", "not UTF-8")] {
            let error = SessionContext::from_headers(&headers(&[("x-presto-user", "a"), ("x-presto-session", value)])).unwrap_err();
            assert!(error.starts_with("Invalid x-presto-session header: property p: ") && error.contains(reason), "{error}");
        }
    }

    #[test]
    fn refuses_bad_headers_with_a_message() {
        assert_eq!(SessionContext::from_headers(&headers(&[])).unwrap_err(), "User must be set");
        let error = SessionContext::from_headers(&headers(&[("x-presto-user", "a"), ("x-presto-session", "novalue")])).unwrap_err();
        assert!(error.contains("name=value"), "{error}");
        let error = SessionContext::from_headers(&headers(&[("x-presto-user", "a"), ("x-presto-schema", "s")])).unwrap_err();
        assert!(error.contains("catalog"), "{error}");
    }
}

//! Client security settings, with Presto's names: HTTPS (`http-server.https.*` in
//! `config.properties`) and PASSWORD authentication (`http-server.authentication.type=PASSWORD`,
//! with `etc/password-authenticator.properties` naming a bcrypt password file).
//!
//! Everything here is read and checked when the node starts: a bad value, a missing file or a
//! malformed password line stops the node with the file and line. Nothing is verified here (the
//! bcrypt check and the TLS handshake are `security::password` and `runtime::tls`): this module
//! only turns text into values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::properties::Properties;

/// Presto's default HTTPS port.
pub const HTTPS_PORT_DEFAULT: u16 = 8443;

/// `http-server.https.*`: where a node serves HTTPS, next to its plain HTTP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsConfig {
    pub port: u16,
    /// One PEM file holding the certificate chain (server certificate first) and its unencrypted
    /// private key, as Presto and Trino read `http-server.https.keystore.path` when it is PEM.
    pub keystore_path: PathBuf,
}

/// `http-server.authentication.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// No client authentication (Presto's default): clients name themselves in `X-Presto-User`.
    None,
    /// `PASSWORD`: HTTP Basic over HTTPS, checked against a password file.
    Password,
}

/// The users of a password file and their bcrypt hashes. The hashes never show in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordFile {
    /// Where the file was read from (for messages).
    pub origin: String,
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "PasswordFile({}, {} users, hashes redacted)", self.origin, self.users.len())
    }
}

impl PasswordFile {
    /// Parses `user:hash` lines as `htpasswd -B` writes them. Blank lines and `#` comments are
    /// skipped; anything else that is not a user with a bcrypt hash is refused with its line.
    pub fn parse(text: &str, origin: &str) -> Result<PasswordFile, String> {
        let mut users = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let at = format!("{origin}:{}", index + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{at}: expected user:bcrypt-hash (as htpasswd -B writes), found no ':'"));
            };
            if user.is_empty() {
                return Err(format!("{at}: the user name is empty"));
            }
            check_bcrypt_hash(hash).map_err(|reason| format!("{at}: user {user:?}: {reason}"))?;
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(format!("{at}: user {user:?} appears twice"));
            }
        }
        if users.is_empty() {
            return Err(format!("{origin}: the password file has no users"));
        }
        Ok(PasswordFile { origin: origin.to_string(), users })
    }

    /// The bcrypt hash of `user`, if the file names them.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }
}

/// Bcrypt as `htpasswd -B` writes it: `$2y$` (or `$2a$`/`$2b$`), a two-digit cost 04..31, `$`,
/// then 53 characters of bcrypt's base64 (22 of salt, 31 of hash). Checked at startup so that a
/// damaged line is reported with its place instead of failing every login later.
fn check_bcrypt_hash(hash: &str) -> Result<(), String> {
    const BODY_CHARS: usize = 53;
    let Some(rest) = ["$2a$", "$2b$", "$2y$"].iter().find_map(|prefix| hash.strip_prefix(prefix)) else {
        return Err("only bcrypt hashes ($2y$, $2a$, $2b$: htpasswd -B) are supported".into());
    };
    let (cost, body) = rest.split_once('$').ok_or("the bcrypt hash has no cost field")?;
    let cost: u32 = match cost.len() {
        2 => cost.parse().map_err(|_| "the bcrypt cost is not a number".to_string())?,
        _ => return Err("the bcrypt cost must be two digits".into()),
    };
    if !(4..=31).contains(&cost) {
        return Err(format!("the bcrypt cost {cost} is outside 04..31"));
    }
    let alphabet_ok = body.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'/');
    if body.len() != BODY_CHARS || !alphabet_ok {
        return Err(format!("the bcrypt hash is damaged (expected {BODY_CHARS} characters of salt and hash after the cost)"));
    }
    Ok(())
}

/// What `http-server.authentication.type` names, or why it cannot be used.
pub fn parse_authentication_type(value: Option<&str>) -> Result<ClientAuthentication, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(ClientAuthentication::None),
        Some(text) if text.eq_ignore_ascii_case("PASSWORD") => Ok(ClientAuthentication::Password),
        Some(text) => {
            let known = ["CERTIFICATE", "KERBEROS", "JWT", "OAUTH2"].iter().any(|name| text.eq_ignore_ascii_case(name));
            if text.contains(',') {
                Err(format!("{text:?}: only one authentication type is supported (PASSWORD)"))
            } else if known {
                Err(format!("{text} authentication is not supported (only PASSWORD)"))
            } else {
                Err(format!("unknown authentication type {text:?} (only PASSWORD)"))
            }
        }
    }
}

/// Reads `etc/password-authenticator.properties` (`password-authenticator.name=file`,
/// `file.password-file=PATH`; a relative path is taken from `root`, the directory holding
/// `etc/`, as for the resource-groups file) and the password file it names.
pub fn read_password_authenticator(path: &Path, root: &Path) -> Result<PasswordFile, String> {
    let properties = Properties::read(path)?;
    let mut used = Vec::new();
    let mut get = |key: &'static str| {
        used.push(key);
        properties.get(key).map(|(value, origin)| (value.trim().to_string(), origin.to_string()))
    };
    match get("password-authenticator.name") {
        Some((name, _)) if name == "file" => {}
        Some((name, origin)) => {
            return Err(format!("{origin}: password-authenticator.name: {name:?} is not supported (only \"file\")"))
        }
        None => return Err(format!("{}: password-authenticator.name is required (file)", path.display())),
    }
    let Some((file, origin)) = get("file.password-file") else {
        return Err(format!("{}: file.password-file is required", path.display()));
    };
    // Trino's cache settings are accepted so that its files work; the cache here is fixed.
    get("file.refresh-period");
    get("file.auth-token-cache.max-size");
    for (key, key_origin) in properties.keys() {
        if !used.contains(&key) {
            return Err(format!("{key_origin}: unknown configuration property {key:?}"));
        }
    }
    let resolved = if Path::new(&file).is_absolute() { PathBuf::from(&file) } else { root.join(&file) };
    let text = std::fs::read_to_string(&resolved)
        .map_err(|error| format!("{origin}: file.password-file: cannot read {}: {error}", resolved.display()))?;
    PasswordFile::parse(&text, &resolved.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `htpasswd -nbB -C 10 alice secret` (the hash is public test data, not a credential).
    const ALICE: &str = "alice:$2y$10$A3CbcWVMbIBz0Y21PeNJNugvnP9e5Ci2yHSOcI9C9yjKMgBcM9Eju";

    #[test]
    fn reads_htpasswd_lines_and_refuses_damaged_ones_with_their_line() {
        let file = PasswordFile::parse(&format!("# users\n{ALICE}\n\nbob:$2y$04$G0kTEuI9E2sOC9ZGMxnWe.MAr.q4o1dPhAWS53.RlXm5zlOggoFTm\n"), "pw.db").unwrap();
        assert_eq!(file.user_count(), 2);
        assert!(file.hash_of("alice").is_some_and(|hash| hash.starts_with("$2y$10$")));
        assert!(file.hash_of("carol").is_none());
        assert!(!format!("{file:?}").contains("$2y$"), "hashes never show in Debug");
        for (text, expected) in [
            ("alice", "pw.db:1: expected user:bcrypt-hash"),
            (":$2y$10$A3CbcWVMbIBz0Y21PeNJNugvnP9e5Ci2yHSOcI9C9yjKMgBcM9Eju", "pw.db:1: the user name is empty"),
            ("alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "pw.db:1: user \"alice\": only bcrypt"),
            ("alice:$2y$1$A3CbcWVMbIBz0Y21PeNJNugvnP9e5Ci2yHSOcI9C9yjKMgBcM9Eju", "two digits"),
            ("alice:$2y$99$A3CbcWVMbIBz0Y21PeNJNugvnP9e5Ci2yHSOcI9C9yjKMgBcM9Eju", "outside 04..31"),
            ("alice:$2y$10$A3CbcWVMbIBz0Y21PeNJNugvnP9e5Ci2yHSOcI9C9yjKMgBcM9E", "damaged"),
            (&format!("{ALICE}\n{ALICE}"), "pw.db:2: user \"alice\" appears twice"),
            ("# nobody\n", "no users"),
        ] {
            let error = PasswordFile::parse(text, "pw.db").unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn only_password_authentication_is_supported() {
        assert_eq!(parse_authentication_type(None), Ok(ClientAuthentication::None));
        assert_eq!(parse_authentication_type(Some("PASSWORD")), Ok(ClientAuthentication::Password));
        assert_eq!(parse_authentication_type(Some("password")), Ok(ClientAuthentication::Password));
        assert!(parse_authentication_type(Some("KERBEROS")).unwrap_err().contains("not supported"));
        assert!(parse_authentication_type(Some("PASSWORD,JWT")).unwrap_err().contains("only one"));
        assert!(parse_authentication_type(Some("LDAP")).unwrap_err().contains("unknown"));
    }

    #[test]
    fn reads_the_authenticator_properties_and_its_file() {
        let root = std::env::temp_dir().join(format!("fireball-password-{}", std::process::id()));
        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let properties = etc.join("password-authenticator.properties");
        std::fs::write(root.join("password.db"), format!("{ALICE}\n")).unwrap();
        std::fs::write(&properties, "password-authenticator.name=file\nfile.password-file=password.db\n").unwrap();
        assert_eq!(read_password_authenticator(&properties, &root).unwrap().user_count(), 1);
        std::fs::write(&properties, "password-authenticator.name=ldap\n").unwrap();
        let error = read_password_authenticator(&properties, &root).unwrap_err();
        assert!(error.contains("password-authenticator.properties:1") && error.contains("ldap"), "{error}");
        std::fs::write(&properties, "password-authenticator.name=file\nfile.password-file=missing.db\n").unwrap();
        let error = read_password_authenticator(&properties, &root).unwrap_err();
        assert!(error.contains("password-authenticator.properties:2") && error.contains("missing.db"), "{error}");
        std::fs::write(&properties, "password-authenticator.name=file\nfile.password-file=password.db\nfile.pasword-file=x\n").unwrap();
        let error = read_password_authenticator(&properties, &root).unwrap_err();
        assert!(error.contains(":3: unknown configuration property"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

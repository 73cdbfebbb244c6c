//! TLS for the HTTPS listener (production builds only: the simulation has no TLS).
//!
//! rustls with the ring provider, TLS 1.2 and 1.3, HTTP/1.1 only (ALPN `http/1.1`, as the rest
//! of the server). The keystore is one PEM file with the certificate chain, server certificate
//! first, and an unencrypted private key (PKCS#8, PKCS#1 RSA or SEC1 EC): the PEM form Presto
//! and Trino accept for `http-server.https.keystore.path`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use tokio_rustls::TlsAcceptor;

/// A client must finish its TLS handshake within this long, or the connection is closed: a
/// client that connects and says nothing holds a connection permit only this long.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Reads `keystore_path` and builds the acceptor; every error names the file and what is wrong.
pub fn acceptor_from_pem_file(keystore_path: &Path) -> Result<TlsAcceptor, String> {
    let shown = keystore_path.display();
    let pem = std::fs::read(keystore_path).map_err(|error| format!("http-server.https.keystore.path: cannot read {shown}: {error}"))?;
    let (certificates, key) = read_keystore(&pem).map_err(|reason| format!("http-server.https.keystore.path {shown}: {reason}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS configuration: {error}"))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|error| format!("http-server.https.keystore.path {shown}: the key does not fit the certificate: {error}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificate chain and private key of a PEM keystore. Pure (bytes in), so its refusals
/// are tested without files.
fn read_keystore(pem: &[u8]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let mut certificates = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        certificates.push(certificate.map_err(|error| format!("a CERTIFICATE block cannot be read: {error}"))?);
    }
    if certificates.is_empty() {
        return Err("no certificate found (expected -----BEGIN CERTIFICATE----- blocks, the server's first)".into());
    }
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no unencrypted private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block; \
             encrypted keys are not supported)"
                .to_string()
        }
        other => format!("the private key cannot be read: {other}"),
    })?;
    Ok((certificates, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keystore_without_certificate_or_key_is_refused_with_the_reason() {
        let empty = read_keystore(b"").unwrap_err();
        assert!(empty.contains("no certificate"), "{empty}");
        // A syntactically valid block whose content is not checked until the key is looked for.
        let only_certificate = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let error = read_keystore(only_certificate).unwrap_err();
        assert!(error.contains("no unencrypted private key"), "{error}");
        let encrypted = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
            -----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(read_keystore(encrypted).unwrap_err().contains("encrypted keys are not supported"));
        let missing = acceptor_from_pem_file(Path::new("/nonexistent/server.pem")).err().unwrap_or_default();
        assert!(missing.contains("cannot read /nonexistent/server.pem"), "{missing}");
    }
}

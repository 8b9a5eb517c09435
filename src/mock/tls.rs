//! TLS for the mock (`mock-server --tls-cert FILE --tls-key FILE`): PEM
//! certificate chain and private key into a rustls server configuration
//! with the `ring` provider (no OpenSSL, no aws-lc). The mock then serves
//! wss://.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {message}")]
    Pem { file: String, message: String },
    #[error("TLS: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

fn pem_error(file: &str, message: impl ToString) -> TlsError {
    TlsError::Pem {
        file: file.to_string(),
        message: message.to_string(),
    }
}

/// Reads a PEM certificate chain and private key from files.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let cert_pem = std::fs::read(cert).map_err(|e| pem_error(&cert_name, format!("cannot read: {e}")))?;
    let key_pem = std::fs::read(key).map_err(|e| pem_error(&key_name, format!("cannot read: {e}")))?;
    from_pem(&cert_pem, &cert_name, &key_pem, &key_name)
}

/// Builds the configuration from PEM text; the names label errors.
pub fn from_pem(
    cert_pem: &[u8],
    cert_name: &str,
    key_pem: &[u8],
    key_name: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_name, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(cert_name, "holds no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| pem_error(key_name, format!("no usable PEM private key: {e}")))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_and_garbage_is_named() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ok = from_pem(
            cert.cert.pem().as_bytes(),
            "c.pem",
            cert.signing_key.serialize_pem().as_bytes(),
            "k.pem",
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
        let err = from_pem(b"nope", "c.pem", cert.signing_key.serialize_pem().as_bytes(), "k.pem").unwrap_err();
        assert!(err.to_string().starts_with("c.pem:"), "{err}");
        let err = from_pem(cert.cert.pem().as_bytes(), "c.pem", b"", "k.pem").unwrap_err();
        assert!(err.to_string().starts_with("k.pem:"), "{err}");
    }
}

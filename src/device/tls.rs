//! TLS for `wss://` servers (real deployments put the xiaozhi server behind
//! nginx with wss): rustls with the ring provider, trusting the system's
//! certificate store, plus an operator's own CA (`--ca-cert FILE`), or
//! nothing at all (`--insecure`, for self-signed test servers; the run says
//! so every time). Built once per run and shared by every device.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to trust the server's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Also trust the CA certificates in this PEM file.
    pub ca_cert: Option<PathBuf>,
    /// Trust any certificate (self-signed test servers).
    pub insecure: bool,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA certificate {path}: {reason}")]
    CaCert { path: String, reason: String },
    #[error("{0} holds no PEM certificate")]
    NoCert(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration every device of a run uses.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider().signature_verification_algorithms)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates are skipped; an explicit CA file
        // must load.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &opts.ca_cert {
            add_pem(&mut roots, path)?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| TlsError::CaCert {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mut added = 0;
    for cert in certs {
        let cert = cert.map_err(|e| TlsError::CaCert {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        roots.add(cert)?;
        added += 1;
    }
    if added == 0 {
        return Err(TlsError::NoCert(shown));
    }
    Ok(())
}

/// `--insecure`: any certificate, any name; signatures are still checked
/// so the handshake itself is sound.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

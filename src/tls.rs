//! HTTPS: the rustls server configuration from `IHF_TLS_CERT` and `IHF_TLS_KEY` (PEM files).
//! actix-web offers HTTP/2 and HTTP/1.1 by ALPN on it, so a browser multiplexes every request
//! and live stream of a page over one connection.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Reads the certificate chain (leaf first) and its private key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate chain IHF_TLS_CERT {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "IHF_TLS_CERT {} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key IHF_TLS_KEY {}", key.display()))?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("IHF_TLS_CERT and IHF_TLS_KEY do not make a usable pair")
}

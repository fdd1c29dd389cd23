//! TLS to the HQ broker (rustls with the ring provider: no C toolchain-heavy aws-lc build).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rumqttc::TlsConfiguration;
use storefront_config::SyncConfig;

/// Installs ring as rustls's process-wide crypto provider; call once at start-up. Calling it
/// again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("sync.{field}: cannot read {}", path.display()))
}

/// The TLS settings for `mqtts://`: the configured CA bundle or the system's roots, and a
/// client certificate when one is configured (mutual TLS).
pub fn configuration(sync: &SyncConfig) -> Result<TlsConfiguration> {
    install_crypto_provider();
    let client_auth = match (&sync.client_cert_file, &sync.client_key_file) {
        (Some(cert), Some(key)) => Some((
            read("client_cert_file", cert)?,
            read("client_key_file", key)?,
        )),
        _ => None,
    };
    if let Some(ca) = &sync.ca_file {
        return Ok(TlsConfiguration::Simple {
            ca: read("ca_file", ca)?,
            alpn: None,
            client_auth,
        });
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        bail!(
            "sync.broker is mqtts:// but this system has no CA certificates; fix: set sync.ca_file to the broker's CA bundle"
        );
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client_auth {
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut cert.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .context("sync.client_cert_file: not a PEM certificate chain")?;
            let key = rustls_pemfile::private_key(&mut key.as_slice())
                .context("sync.client_key_file: not a PEM private key")?
                .context("sync.client_key_file: no private key in the file")?;
            builder
                .with_client_auth_cert(certs, key)
                .context("sync: the client certificate and key do not match")?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

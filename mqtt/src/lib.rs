//! What the agent and HQ share to reach an MQTT broker: the broker URL (`mqtt://`,
//! `mqtts://`), the rustls client settings built from a CA bundle (or the system's roots) and an
//! optional client certificate and key, and a password read from a file. rustls runs on the
//! ring provider (no aws-lc build).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::{TlsConfiguration, Transport};

/// Default port of plain MQTT and of MQTT over TLS.
pub const MQTT_PORT: u16 = 1883;
pub const MQTTS_PORT: u16 = 8883;

/// A broker address: `mqtt://host:port`, `mqtts://host:port` (TLS), `tcp://`, `ssl://`, or a
/// bare `host[:port]` (plain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// Speak TLS.
    pub tls: bool,
}

/// Why a broker URL or the TLS and credential files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    #[error("broker address {url:?}: {reason}; fix: write mqtt://host:1883 or mqtts://host:8883")]
    Url { url: String, reason: &'static str },
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} {path} holds no usable {expected}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error(
        "this system has no CA certificates to check the broker with; fix: give the broker's CA bundle (a CA file)"
    )]
    NoRoots,
    #[error(
        "a client certificate needs its key and a key its certificate; fix: give both or neither"
    )]
    HalfClientAuth,
    #[error("the client certificate and key do not go together: {0}")]
    ClientAuth(#[source] rustls::Error),
    #[error("the password file {0} is empty; fix: write the password into it")]
    EmptyPassword(PathBuf),
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, MqttSetupError> {
        let bad = |reason| MqttSetupError::Url {
            url: url.to_owned(),
            reason,
        };
        let (tls, rest) = match url.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => (false, rest),
            Some(("mqtts" | "ssl", rest)) => (true, rest),
            Some(_) => return Err(bad("the scheme must be mqtt:// or mqtts://")),
            None => (false, url),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port must be a number from 1 to 65535"))?,
            ),
            None => (rest, if tls { MQTTS_PORT } else { MQTT_PORT }),
        };
        if host.is_empty() || host.contains('/') || port == 0 {
            return Err(bad("expected a host and a port"));
        }
        Ok(BrokerUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The files TLS is set up from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA bundle (PEM) to check the broker with; the system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for mutual TLS: both or neither.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// Installs ring as rustls's process-wide crypto provider; call once at start-up. Calling it
/// again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, MqttSetupError> {
    std::fs::read(path).map_err(|source| MqttSetupError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, MqttSetupError> {
    let pem = read(what, path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(MqttSetupError::Pem {
            what,
            path: path.to_owned(),
            expected: "PEM certificate",
        });
    }
    Ok(certs)
}

/// The rustls client settings for `mqtts://`: the CA bundle or the system's roots, and the
/// client certificate when one is given.
pub fn tls_client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, MqttSetupError> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca_file {
        Some(ca) => {
            for cert in certificates("CA file", ca)? {
                roots.add(cert).map_err(|_| MqttSetupError::Pem {
                    what: "CA file",
                    path: ca.clone(),
                    expected: "CA certificate",
                })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(MqttSetupError::NoRoots);
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (&files.client_cert_file, &files.client_key_file) {
        (Some(cert), Some(key)) => {
            let certs = certificates("client certificate file", cert)?;
            let pem = read("client key file", key)?;
            let private_key = rustls_pemfile::private_key(&mut pem.as_slice())
                .ok()
                .flatten()
                .ok_or_else(|| MqttSetupError::Pem {
                    what: "client key file",
                    path: key.clone(),
                    expected: "PEM private key",
                })?;
            builder
                .with_client_auth_cert(certs, private_key)
                .map_err(MqttSetupError::ClientAuth)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(MqttSetupError::HalfClientAuth),
    };
    Ok(Arc::new(config))
}

/// The transport for `url`: plain TCP, or TLS set up from `files`.
pub fn transport(url: &BrokerUrl, files: &TlsFiles) -> Result<Transport, MqttSetupError> {
    if !url.tls {
        return Ok(Transport::Tcp);
    }
    let config = tls_client_config(files)?;
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(config)))
}

/// The password in `path`, without its trailing line break. An empty file is an error, not
/// "no password".
pub fn read_password(path: &Path) -> Result<String, MqttSetupError> {
    let bytes = read("password file", path)?;
    let text = String::from_utf8_lossy(&bytes);
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(MqttSetupError::EmptyPassword(path.to_owned()));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_default_ports_and_tls() {
        let url = |host: &str, port, tls| BrokerUrl {
            host: host.into(),
            port,
            tls,
        };
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap(),
            url("127.0.0.1", 1884, false)
        );
        assert_eq!(
            BrokerUrl::parse("tcp://broker/").unwrap(),
            url("broker", 1883, false)
        );
        assert_eq!(
            BrokerUrl::parse("localhost").unwrap(),
            url("localhost", 1883, false)
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://hq.example").unwrap(),
            url("hq.example", 8883, true)
        );
        assert_eq!(
            BrokerUrl::parse("ssl://h:9000").unwrap(),
            url("h", 9000, true)
        );
        for bad in [
            "http://x",
            "mqtt://x:99999",
            "mqtt://:1883",
            "mqtt://x:0",
            "ws://x",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(url("h", 8883, true).to_string(), "mqtts://h:8883");
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = std::env::temp_dir().join(format!("storefront-mqtt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("password");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            read_password(&empty),
            Err(MqttSetupError::EmptyPassword(_))
        ));
        std::fs::write(&empty, "s3cret\n").unwrap();
        assert_eq!(read_password(&empty).unwrap(), "s3cret");
        let files = TlsFiles {
            ca_file: Some(dir.join("missing-ca.pem")),
            ..TlsFiles::default()
        };
        let error = tls_client_config(&files).unwrap_err().to_string();
        assert!(error.contains("missing-ca.pem"), "{error}");
        let half = TlsFiles {
            ca_file: None,
            client_cert_file: Some(dir.join("c.pem")),
            client_key_file: None,
        };
        assert!(matches!(
            tls_client_config(&half),
            Err(MqttSetupError::HalfClientAuth | MqttSetupError::NoRoots)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

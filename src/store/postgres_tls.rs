//! The rustls connector a PostgreSQL target selects ([`crate::config::PgTarget`] parses the
//! URL and its libpq TLS options).
//!
//! tokio-postgres understands `sslmode=disable|prefer|require` only and has no certificate
//! options, so `sslmode` and `sslrootcert` are read here (and removed before tokio-postgres
//! parses the rest), with libpq's meaning:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` (default here) | no | — |
//! | `prefer` | if the server offers it | no |
//! | `require` | yes | no; against `sslrootcert` (chain only) when one is given |
//! | `verify-ca` | yes | chain, against `sslrootcert` or the public roots |
//! | `verify-full` | yes | chain and host name, against `sslrootcert` or the public roots |

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::config::{PgTarget, SslMode};

/// The rustls client configuration for a target; `None` when TLS is off.
pub fn client_config(target: &PgTarget) -> Result<Option<rustls::ClientConfig>, String> {
    if target.ssl_mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = || -> Result<Arc<rustls::RootCertStore>, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &target.root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "sslrootcert {}: no certificate in it",
                        path.display()
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(Arc::new(roots))
    };
    let webpki = |roots| {
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| e.to_string())
    };
    let verifier: Arc<dyn ServerCertVerifier> = match target.ssl_mode {
        SslMode::Disable => unreachable!("handled above"),
        SslMode::Prefer => Arc::new(EncryptOnly(provider.clone())),
        SslMode::Require if target.root_cert.is_none() => Arc::new(EncryptOnly(provider.clone())),
        SslMode::Require | SslMode::VerifyCa => Arc::new(ChainOnly(webpki(roots()?)?)),
        SslMode::VerifyFull => webpki(roots()?)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(config))
}

/// `prefer` and `require` without a root certificate: the connection is encrypted, the
/// server's certificate is not checked (libpq does the same); its handshake signature is.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libpq_tls_options_and_leaves_the_rest() {
        let t = PgTarget::parse(
            "postgres://u:pw@db.internal:5433/latchkey?application_name=lk&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
            None,
        )
        .unwrap();
        assert_eq!(t.ssl_mode, SslMode::VerifyFull);
        assert_eq!(
            t.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(t.config.get_application_name(), Some("lk"));
        assert_eq!(t.config.get_dbname(), Some("latchkey"));

        let plain =
            PgTarget::parse("postgres://u@db/x", Some(std::path::Path::new("/ca"))).unwrap();
        assert_eq!(plain.ssl_mode, SslMode::Disable);
        assert!(client_config(&plain).unwrap().is_none());
        assert_eq!(
            plain.root_cert.as_deref(),
            Some(std::path::Path::new("/ca"))
        );

        assert!(PgTarget::parse("postgres://u@db/x?sslmode=sometimes", None).is_err());
        let missing = PgTarget::parse(
            "postgres://u@db/x?sslmode=verify-ca&sslrootcert=/nope",
            None,
        )
        .unwrap();
        assert!(client_config(&missing).unwrap_err().contains("/nope"));
    }
}

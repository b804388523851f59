//! The connection pool: built once per process (once per Lambda cold start),
//! never per request.
//!
//! TLS: with `sslmode=require` (or `verify-ca` / `verify-full`, which mean
//! the same here: the server certificate is always verified) the connection
//! uses rustls with the Mozilla roots, plus the PEM bundle named by
//! `PGSSLROOTCERT` when set (managed Postgres such as RDS signs with its own CA).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// How to reach Postgres.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub url: String,
    pub size: usize,
    /// How long a caller waits for a connection before "unavailable".
    pub wait_timeout: Duration,
    /// `PGSSLROOTCERT`: extra trusted CA certificates (PEM).
    pub extra_roots_file: Option<String>,
}

impl PoolOptions {
    pub fn new(url: impl Into<String>, size: usize) -> Self {
        Self {
            url: url.into(),
            size,
            wait_timeout: Duration::from_secs(5),
            extra_roots_file: std::env::var("PGSSLROOTCERT").ok().filter(|s| !s.is_empty()),
        }
    }
}

/// Two TLS providers are linked (ring here, aws-lc-rs by the AWS SDK);
/// libraries that ask rustls for "the" provider need one installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How to open one connection: the parsed URL and the TLS connector. The
/// pool and the LISTEN session of the `postgres` queue both connect this way.
///
/// TLS is used exactly when the URL asks for it (`sslmode=require`, or
/// libpq's `verify-ca` / `verify-full`), and then the server certificate is
/// always verified. Without `sslmode` (libpq's default `prefer`) the
/// connection is plain: `prefer` would otherwise mean "try TLS, and fail on a
/// certificate we cannot verify", which is neither libpq's meaning nor safe.
pub fn connect_params(
    options: &PoolOptions,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), StoreError> {
    install_crypto_provider();
    let url = normalize_sslmode(&options.url);
    let mut pg = tokio_postgres::Config::from_str(&url)
        .map_err(|e| StoreError::Unavailable(format!("DATABASE_URL is not a valid Postgres URL: {e}")))?;
    if pg.get_ssl_mode() == SslMode::Prefer {
        pg.ssl_mode(SslMode::Disable);
    }
    let tls = MakeRustlsConnect::new(tls_config(options.extra_roots_file.as_deref())?);
    Ok((pg, tls))
}

/// Builds the pool. Connections are opened lazily, on first use.
pub fn build(options: &PoolOptions) -> Result<Pool, StoreError> {
    let (pg, tls) = connect_params(options)?;
    let manager = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.wait_timeout))
        .recycle_timeout(Some(options.wait_timeout))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("building the pool: {e}")))
}

/// tokio-postgres knows `disable`, `prefer` and `require`; libpq URLs often
/// say `verify-full`. We always verify, so those mean `require` here.
fn normalize_sslmode(url: &str) -> String {
    url.replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require")
}

fn tls_config(extra_roots_file: Option<&str>) -> Result<rustls::ClientConfig, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_roots_file {
        let pem =
            std::fs::read(path).map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Unavailable(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_verify_modes_become_require() {
        assert_eq!(
            normalize_sslmode("postgres://u@h/db?sslmode=verify-full"),
            "postgres://u@h/db?sslmode=require"
        );
    }

    #[test]
    fn tls_is_used_exactly_when_the_url_asks_for_it() {
        let mode = |url: &str| {
            connect_params(&PoolOptions::new(url, 1))
                .expect("valid")
                .0
                .get_ssl_mode()
        };
        assert_eq!(mode("postgres://u@h/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@h/db?sslmode=prefer"), SslMode::Disable);
        assert_eq!(mode("postgres://u@h/db?sslmode=require"), SslMode::Require);
        assert_eq!(mode("postgres://u@h/db?sslmode=verify-full"), SslMode::Require);
        assert_eq!(mode("postgres://u@h/db?sslmode=disable"), SslMode::Disable);
    }

    #[test]
    fn a_bad_url_is_refused_with_a_clear_message() {
        let err = build(&PoolOptions::new("postgres://h:notaport/db", 2)).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn a_pool_builds_without_connecting() {
        assert!(
            build(&PoolOptions::new(
                "postgres://nobody@127.0.0.1:1/none?sslmode=require",
                2
            ))
            .is_ok()
        );
    }
}

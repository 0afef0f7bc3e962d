//! TLS for the tests: a throw-away CA and a server certificate for `127.0.0.1`
//! and `localhost`, made at test time with `rcgen`, and a server on them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use super::{spawn_app, TempDir, TestApp};

/// PEM files of a fresh CA and a server certificate it signed, in a temporary
/// directory that lives as long as this.
pub struct TestCerts {
    pub dir: Arc<TempDir>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_pem: String,
}

impl TestCerts {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "syncroom test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "syncroom test server");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        let dir = Arc::new(TempDir::new("tls"));
        let write = |name: &str, pem: &str| {
            let path = dir.0.join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        TestCerts {
            ca: write("ca.pem", &ca.pem()),
            cert: write("cert.pem", &cert.pem()),
            key: write("key.pem", &key.serialize_pem()),
            ca_pem: ca.pem(),
            dir,
        }
    }

    /// A reqwest client that trusts this CA only and speaks HTTP/2 when the
    /// server offers it (ALPN).
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA for reqwest");
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest TLS client")
    }
}

/// A server speaking HTTPS (HTTP/2 and HTTP/1.1) with `certs`, with extra `args`;
/// `app.client` trusts the test CA and `app.base` is `https://127.0.0.1:PORT`.
pub async fn spawn_tls_app(certs: &TestCerts, args: &[&str]) -> TestApp {
    let cert = certs.cert.to_str().expect("UTF-8 temp path");
    let key = certs.key.to_str().expect("UTF-8 temp path");
    let mut all = vec!["--tls-cert", cert, "--tls-key", key];
    all.extend_from_slice(args);
    let mut app = spawn_app(&all).await;
    app.base = format!("https://{}", app.addr);
    app.client = certs.client();
    app
}

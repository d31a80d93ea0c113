//! A local TLS server with certificates from its own test authority, for
//! outbound HTTPS and `tls://` tests: one good certificate and the ways a
//! certificate goes wrong (another name, an unknown authority, expired).
//! It answers HTTP requests (`GET`, keep-alive) with a fixed body, and
//! echoes anything else; it counts the connections it accepted.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub const TLS_BODY: &str = "hello over tls\n";

/// A test certificate authority: its PEM (for `outbound_ca_file`) and
/// what it signs with.
pub struct TestCa {
    pub pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A server certificate for `names` (an IP literal becomes an IP SAN);
    /// `expired`: valid only during 2020.
    pub fn server_certificate(
        &self,
        names: &[&str],
        expired: bool,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }
}

pub struct TlsServer {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl TlsServer {
    /// Serves TLS with `certificate` on a free loopback port, on a thread
    /// that lives as long as the test process (each test's server is small).
    pub fn start((cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>)) -> TlsServer {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                std::thread::spawn(move || serve(config, stream));
            }
        });
        TlsServer { port, accepted }
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(config: Arc<rustls::ServerConfig>, tcp: std::net::TcpStream) {
    let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut input = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match tls.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&buffer[..n]);
        if !input.starts_with(b"GET ") {
            // Not HTTP: echo what came.
            let mut reply = b"tls: ".to_vec();
            reply.append(&mut input);
            let _ = tls.write_all(&reply);
            let _ = tls.flush();
            continue;
        }
        while let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") {
            input.drain(..end + 4);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{TLS_BODY}",
                TLS_BODY.len()
            );
            if tls.write_all(response.as_bytes()).and_then(|()| tls.flush()).is_err() {
                return;
            }
        }
    }
}

/// A TCP server that accepts and never answers: a TLS handshake to it
/// times out.
pub fn silent_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

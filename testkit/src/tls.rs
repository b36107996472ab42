//! Certificates a test makes for itself: a CA of its own and a server certificate it signed
//! for `127.0.0.1` and `localhost`, written as PEM files, so TLS is tested with nothing from
//! outside and no certificate checked in.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

/// The PEM files of one test's TLS: the CA to trust, and the server's chain and key.
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("an RSA key")).expect("a key")
}

fn certificate(
    subject: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", subject).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    let signer = match issuer {
        None => {
            b.set_issuer_name(&name).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
                .unwrap();
            key
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .dns("localhost")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            ca_key
        }
    };
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

/// A CA and a server certificate for 127.0.0.1, in `dir`.
pub fn tls_files(dir: &Path) -> TlsFiles {
    let ca_key = key();
    let ca = certificate("test CA", &ca_key, None);
    let server_key = key();
    let server = certificate("127.0.0.1", &server_key, Some((&ca, &ca_key)));
    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&files.ca_cert, ca.to_pem().unwrap()).unwrap();
    std::fs::write(&files.cert, server.to_pem().unwrap()).unwrap();
    std::fs::write(&files.key, server_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    files
}

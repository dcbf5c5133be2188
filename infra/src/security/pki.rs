//! A cluster certificate authority for development, tests and benchmarks (`mc certs init`):
//! one CA, and per-component certificates whose SAN URI names the component. Production
//! brings its own PEM files; nothing here is needed to run with them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::{Identity, Security, SecurityError};

/// The hosts a development certificate is valid for when none are given.
pub const LOCAL_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// How long certificates are valid when the issuer does not say: a year for components, 90
/// days for users (people and services come and go; a lost user certificate expires soon).
pub const COMPONENT_VALIDITY_DAYS: u32 = 365;
pub const USER_VALIDITY_DAYS: u32 = 90;

/// The default validity of a certificate for `who`, in days.
pub fn default_validity_days(who: &Identity) -> u32 {
    match who {
        Identity::User(_) => USER_VALIDITY_DAYS,
        _ => COMPONENT_VALIDITY_DAYS,
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Authority {
    ca_pem: String,
    ca_key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn pki_err(what: &str, e: impl std::fmt::Display) -> SecurityError {
    SecurityError::Pki(format!("{what}: {e}"))
}

impl Authority {
    /// A new CA named after `cluster_name`.
    pub fn generate(cluster_name: &str) -> Result<Self, SecurityError> {
        let key = KeyPair::generate().map_err(|e| pki_err("CA key", e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_err("CA params", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{cluster_name} cluster CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(|e| pki_err("CA", e))?;
        Ok(Self {
            ca_pem: cert.pem(),
            ca_key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA `init` wrote to `dir` (ca.pem, ca.key), to issue more certificates with.
    pub fn load(dir: &Path) -> Result<Self, SecurityError> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| pki_err(&dir.join(name).display().to_string(), e))
        };
        let (ca_pem, ca_key_pem) = (read("ca.pem")?, read("ca.key")?);
        let key = KeyPair::from_pem(&ca_key_pem).map_err(|e| pki_err("ca.key", e))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| pki_err("ca.pem", e))?;
        Ok(Self {
            ca_pem,
            ca_key_pem,
            issuer,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A certificate for `who`. Components (MCs, stores) serve and dial, so theirs are valid
    /// for both ends and for `hosts`; a user's only identifies a client.
    pub fn issue(&self, who: &Identity, hosts: &[String]) -> Result<Issued, SecurityError> {
        self.issue_for(who, hosts, default_validity_days(who))
    }

    /// `issue`, valid from an hour ago (clocks differ) for `days` days.
    pub fn issue_for(
        &self,
        who: &Identity,
        hosts: &[String],
        days: u32,
    ) -> Result<Issued, SecurityError> {
        if days == 0 {
            return Err(pki_err(
                "validity",
                "a certificate must be valid for a day at least",
            ));
        }
        let key = KeyPair::generate().map_err(|e| pki_err("key", e))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_err("params", e))?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(i64::from(days));
        params
            .distinguished_name
            .push(DnType::CommonName, who.to_string());
        let uri = who.uri().try_into().map_err(|e| pki_err("SAN URI", e))?;
        params.subject_alt_names.push(SanType::URI(uri));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if !matches!(who, Identity::User(_)) {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
            for host in hosts {
                let san = match host.parse::<IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        host.as_str()
                            .try_into()
                            .map_err(|e| pki_err(&format!("host `{host}`"), e))?,
                    ),
                };
                params.subject_alt_names.push(san);
            }
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| pki_err("sign", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes ca.pem and ca.key to `dir` (the key readable by its owner only).
    pub fn write_ca(&self, dir: &Path) -> Result<(), SecurityError> {
        private_dir(dir)?;
        write(&dir.join("ca.pem"), &self.ca_pem, false)?;
        write(&dir.join("ca.key"), &self.ca_key_pem, true)
    }

    /// Issues a certificate for `who` and writes `<stem>.pem` and `<stem>.key` to `dir`.
    pub fn write_issued(
        &self,
        dir: &Path,
        who: &Identity,
        hosts: &[String],
    ) -> Result<(PathBuf, PathBuf), SecurityError> {
        self.write_issued_for(dir, who, hosts, default_validity_days(who))
    }

    /// `write_issued`, valid for `days` days.
    pub fn write_issued_for(
        &self,
        dir: &Path,
        who: &Identity,
        hosts: &[String],
        days: u32,
    ) -> Result<(PathBuf, PathBuf), SecurityError> {
        private_dir(dir)?;
        let issued = self.issue_for(who, hosts, days)?;
        let cert = dir.join(format!("{}.pem", who.file_stem()));
        let key = dir.join(format!("{}.key", who.file_stem()));
        write(&cert, &issued.cert_pem, false)?;
        write(&key, &issued.key_pem, true)?;
        Ok((cert, key))
    }

    /// The in-memory security of `who`, for components a test or bench runs in its process.
    pub fn security(&self, who: &Identity) -> Result<Security, SecurityError> {
        let hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| h.to_string()).collect();
        let issued = self.issue(who, &hosts)?;
        Security::from_pem(
            self.ca_pem.as_bytes(),
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
    }
}

/// Creates `dir` readable by its owner only (0700), or checks nothing of one that exists.
fn private_dir(dir: &Path) -> Result<(), SecurityError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| pki_err(&dir.display().to_string(), e))
}

/// Writes a PEM file whole or not at all: into a new file beside it (created 0600 for a
/// private key from its first byte — never written with the default umask and narrowed after),
/// synced, then renamed over the old one, so a kill in the middle leaves the old file (a CA key
/// half overwritten would be lost for good) and no link planted at the path is followed.
fn write(path: &Path, text: &str, private: bool) -> Result<(), SecurityError> {
    use std::io::Write;
    let err = |e: std::io::Error| pki_err(&path.display().to_string(), e);
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)?;
    let _ = private;
    Ok(())
}

/// One CA per test or bench process, with its files in a temporary directory so child
/// processes (`mc serve`, `store-node`) can be given the same CA. Certificates are issued
/// on first use of an identity and cached.
pub struct TestPki {
    pub dir: PathBuf,
    authority: Authority,
    written: Mutex<std::collections::HashSet<Identity>>,
    secured: Mutex<std::collections::HashMap<Identity, Security>>,
}

impl TestPki {
    /// The process's test CA; a child process a bench re-executes is given its parent's
    /// through `MC_TEST_PKI_DIR` (see [`TestPki::env`]), so both trust each other.
    pub fn shared() -> &'static TestPki {
        static PKI: OnceLock<TestPki> = OnceLock::new();
        PKI.get_or_init(|| {
            if let Some(dir) = std::env::var_os("MC_TEST_PKI_DIR") {
                let dir = PathBuf::from(dir);
                let authority = Authority::load(&dir).expect("the parent's test CA");
                return TestPki {
                    dir,
                    authority,
                    written: Mutex::default(),
                    secured: Mutex::default(),
                };
            }
            let dir = std::env::temp_dir().join(format!("mc-test-pki-{}", std::process::id()));
            let authority = Authority::generate("test").expect("a test CA");
            authority.write_ca(&dir).expect("the test CA's files");
            TestPki {
                dir,
                authority,
                written: Mutex::default(),
                secured: Mutex::default(),
            }
        })
    }

    /// The environment variable that hands this CA to a child process.
    pub fn env(&self) -> (&'static str, PathBuf) {
        ("MC_TEST_PKI_DIR", self.dir.clone())
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The in-process security of `who` (the same object each time).
    pub fn security(&self, who: &Identity) -> Security {
        let mut secured = self.secured.lock().expect("pki lock");
        secured
            .entry(who.clone())
            .or_insert_with(|| self.authority.security(who).expect("a test certificate"))
            .clone()
    }

    /// What a test client uses: the bootstrap admin's certificate.
    pub fn admin(&self) -> Security {
        self.security(&Identity::User("admin".into()))
    }

    /// The `--tls-ca`, `--tls-cert` and `--tls-key` flags that give a child process `who`.
    pub fn flags(&self, who: &Identity) -> Vec<String> {
        let mut written = self.written.lock().expect("pki lock");
        let stem = who.file_stem();
        if written.insert(who.clone()) {
            let hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| h.to_string()).collect();
            self.authority
                .write_issued(&self.dir, who, &hosts)
                .expect("a test certificate file");
        }
        let path = |name: String| self.dir.join(name).display().to_string();
        vec![
            "--tls-ca".into(),
            path("ca.pem".into()),
            "--tls-cert".into(),
            path(format!("{stem}.pem")),
            "--tls-key".into(),
            path(format!("{stem}.key")),
        ]
    }
}

/// Connects to `addr` as the test CA's admin user: how tests and benches call an MC.
pub async fn admin_connect(
    addr: impl AsRef<str>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    TestPki::shared().admin().connect(addr.as_ref()).await
}

/// Connects to `addr` as MC 1 of the test CA: what a test that plays the MC toward a store
/// (steps, status) uses.
pub async fn mc_connect(
    addr: impl AsRef<str>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    TestPki::shared()
        .security(&Identity::Mc(1))
        .connect(addr.as_ref())
        .await
}

#[cfg(test)]
mod validity_tests {
    use super::*;

    #[test]
    fn keys_are_private_from_the_start_and_certificates_expire() {
        let dir = std::env::temp_dir().join(format!("mc-pki-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = Authority::generate("t").unwrap();
        ca.write_ca(&dir).unwrap();
        let (cert, key) = ca
            .write_issued(&dir, &Identity::User("alice".into()), &[])
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&key), 0o600);
            assert_eq!(mode(&dir.join("ca.key")), 0o600);
        }
        let pem = std::fs::read(&cert).unwrap();
        let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let x509 = parsed.parse_x509().unwrap();
        let days = (x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(
            days,
            i64::from(USER_VALIDITY_DAYS),
            "user certificates: 90 days"
        );
        let store = ca.issue(&Identity::Store(1), &[]).unwrap();
        let (_, parsed) = x509_parser::pem::parse_x509_pem(store.cert_pem.as_bytes()).unwrap();
        let x509 = parsed.parse_x509().unwrap();
        let days = (x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, i64::from(COMPONENT_VALIDITY_DAYS));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

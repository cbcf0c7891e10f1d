//! The files a test run of the gateway needs, written into a scratch directory: throw-away
//! certificates (`gateway::test_pki`), a client key, the IO sandbox's configuration
//! (mutual TLS, IO's budget) and the gateway's (queue in the scratch directory).

use gateway::test_pki::{self, ServerKey, TestPki};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The institution and service the test configurations use.
const INSTITUTION: &str = "80000000010";
const SERVICE_ID: &str = "01JHWTESTSSERVICE000000000";
const IO_KEY: &str = "hw-tests-io-subscription-key";
/// Where the gateway delivers when no sandbox runs: a loopback port nothing listens on,
/// so messages stay queued (retried with backoff) and nothing leaves the machine.
pub const UNREACHABLE_IO: &str = "http://127.0.0.1:9/api/v1";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot make test certificates: {0}")]
    Certificates(#[from] test_pki::PkiError),
    #[error("the system random number generator failed making a client key")]
    Random,
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A local client's key (sent in Ocp-Apim-Subscription-Key) and its digest for the
/// gateway's configuration.
#[derive(Clone)]
pub struct ClientKey {
    pub key: String,
    pub digest_hex: String,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(..)")
    }
}

pub fn client_key() -> Result<ClientKey, SetupError> {
    let (key, digest) = gateway::auth::new_client_key().map_err(|_| SetupError::Random)?;
    Ok(ClientKey { key, digest_hex: digest.to_hex() })
}

/// A CA, a server certificate for localhost and a client certificate in `dir`.
pub fn certificates(dir: &Path) -> Result<TestPki, SetupError> {
    Ok(test_pki::generate(dir, ServerKey::Ecdsa, "io-gateway hw-tests")?)
}

/// Where the gateway delivers.
pub enum Io<'a> {
    /// Nowhere reachable (see `UNREACHABLE_IO`).
    Unreachable,
    /// The sandbox at `port` on loopback, over mutual TLS with `pki`'s client certificate.
    Sandbox { port: u16, pki: &'a TestPki },
}

/// What goes into the gateway's configuration.
pub struct GatewaySetup<'a> {
    pub dir: &'a Path,
    /// `[local_api] listen`, e.g. "127.0.0.1:0".
    pub listen: &'a str,
    pub io: Io<'a>,
    /// Serve the local API over TLS with `pki`'s server certificate.
    pub api_tls: Option<&'a TestPki>,
    pub client: &'a ClientKey,
}

/// Writes `dir/gateway.toml` (and the IO key file it names); returns its path.
pub fn gateway_config(setup: &GatewaySetup<'_>) -> Result<PathBuf, SetupError> {
    let dir = setup.dir;
    let io_key = write_private(&dir.join("io.key"), IO_KEY)?;
    let mut text = format!(
        "# io-gateway hw-tests: a scratch gateway. Its queue is {queue}; it never talks to IO.\n\
         [[institutions]]\nname = \"Comune di Prova (hw-tests)\"\nfiscal_code = \"{INSTITUTION}\"\n\
         [[institutions.services]]\nname = \"hw\"\nservice_id = \"{SERVICE_ID}\"\nprimary_key = {{ file = {key} }}\n\n\
         [[clients]]\nname = \"hw-tests\"\nkey_sha256 = \"{digest}\"\nservices = [\"hw\"]\n\n",
        queue = dir.join("queue.db").display(),
        key = quoted(&io_key),
        digest = setup.client.digest_hex,
    );
    match &setup.io {
        Io::Unreachable => {
            let _ = writeln!(text, "[io]\nbase_url = \"{UNREACHABLE_IO}\"\n");
        }
        Io::Sandbox { port, pki } => {
            let _ = writeln!(
                text,
                "[io]\nbase_url = \"https://localhost:{port}/api/v1\"\nclient_certificate = {}\nclient_key = {}\nca_bundle = {}\n",
                quoted(&pki.client_certificate),
                quoted(&pki.client_key),
                quoted(&pki.ca_certificate)
            );
        }
    }
    let _ = writeln!(text, "[local_api]\nlisten = \"{}\"", setup.listen);
    if let Some(pki) = setup.api_tls {
        let _ = writeln!(
            text,
            "[local_api.tls]\ncertificate = {}\nprivate_key = {}",
            quoted(&pki.server_certificate),
            quoted(&pki.server_key)
        );
    }
    let _ = writeln!(
        text,
        "\n[storage]\npath = {}\nmin_free_disk_mb = 16\n\n[delivery]\nfirst_poll_after_seconds = 1",
        quoted(&dir.join("queue.db"))
    );
    write(&dir.join("gateway.toml"), &text)
}

/// Writes `dir/sandbox.toml`: mutual TLS with `pki`, IO's budget (150 calls per 5 s),
/// messages processed at once, every citizen on IO.
pub fn sandbox_config(dir: &Path, pki: &TestPki) -> Result<PathBuf, SetupError> {
    let text = format!(
        "# io-gateway hw-tests: the IO sandbox the soak delivers to.\n\
         listen = \"127.0.0.1:0\"\nrate_limit = {{ calls = 150, per_seconds = 5 }}\nprocessing_delay_ms = 0\n\
         unknown_citizens = \"on_io\"\n\n[tls]\ncertificate = {}\nprivate_key = {}\nclient_ca = {}\n\n\
         [[services]]\nservice_id = \"{SERVICE_ID}\"\ninstitution = \"{INSTITUTION}\"\nprimary_key = \"{IO_KEY}\"\n",
        quoted(&pki.server_certificate),
        quoted(&pki.server_key),
        quoted(&pki.ca_certificate),
    );
    write(&dir.join("sandbox.toml"), &text)
}

/// A valid message of about 1 KiB for `fiscal_code`, carrying `marker`.
pub fn message(fiscal_code: &str, marker: &str) -> Vec<u8> {
    let markdown = format!(
        "Gentile cittadina, gentile cittadino, questo e' un messaggio di prova inviato dal test di carico \
         dell'appliance io-gateway del Comune. Non richiede alcuna azione da parte sua. {} [{marker}]",
        "Il testo e' volutamente lungo quanto un avviso reale, per misurare il sistema con messaggi di \
         dimensione realistica. "
            .repeat(6)
    );
    serde_json::json!({
        "fiscal_code": fiscal_code,
        "content": { "subject": "Prova tecnica dell'appliance io-gateway", "markdown": markdown }
    })
    .to_string()
    .into_bytes()
}

/// Valid fiscal codes the tests post to, in turn.
pub const FISCAL_CODES: [&str; 3] = ["BNCLRA85C52F205V", "VRDGPP50T01H501B", "SPSNMR79L71F839Q"];

/// A TOML basic string holding `path`.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes a key file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<PathBuf, SetupError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| SetupError::Write { path: path.to_path_buf(), source };
    let mut file =
        std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path).map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    Ok(path.to_path_buf())
}

fn write(path: &Path, text: &str) -> Result<PathBuf, SetupError> {
    std::fs::write(path, text).map_err(|source| SetupError::Write { path: path.to_path_buf(), source })?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_accepts_the_configurations_and_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let pki = certificates(dir.path()).unwrap();
        let client = client_key().unwrap();
        let setups = [
            GatewaySetup {
                dir: dir.path(),
                listen: "127.0.0.1:0",
                io: Io::Unreachable,
                api_tls: None,
                client: &client,
            },
            GatewaySetup {
                dir: dir.path(),
                listen: "127.0.0.1:0",
                io: Io::Sandbox { port: 8443, pki: &pki },
                api_tls: Some(&pki),
                client: &client,
            },
        ];
        for setup in &setups {
            let path = gateway_config(setup).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            gateway::config::Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        let sandbox = std::fs::read_to_string(sandbox_config(dir.path(), &pki).unwrap()).unwrap();
        gateway::sandbox::SandboxConfig::from_toml_str(&sandbox).unwrap_or_else(|e| panic!("{e}\n{sandbox}"));
        let body = message(FISCAL_CODES[0], "m1");
        assert!((900..1400).contains(&body.len()), "{}", body.len());
    }
}

//! Key files on the command line: `tutti keygen`, and the `--key` /
//! `--authorized` options of secure stacks.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tutti::secure::{hex, load_authorized, Identity, Secure};

/// Options that make a stack secure.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KeyOpts {
    /// Secret key file (from `tutti keygen`), for secure stacks.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Authorized public keys, one per line, for secure stacks.
    #[arg(long)]
    pub authorized: Option<PathBuf>,
}

impl KeyOpts {
    /// The security configuration, if the options name one; an error when
    /// only half of it is given or a file is bad.
    pub fn load(&self) -> Result<Option<Arc<Secure>>, String> {
        match (&self.key, &self.authorized) {
            (None, None) => Ok(None),
            (Some(k), Some(a)) => {
                let id = Identity::load(k).map_err(|e| e.to_string())?;
                let auth = load_authorized(a).map_err(|e| e.to_string())?;
                Secure::new(id, &auth)
                    .map(|s| Some(Arc::new(s)))
                    .map_err(|e| e.to_string())
            }
            _ => Err("--key and --authorized go together".into()),
        }
    }
}

/// Writes a new secret key file (refusing to overwrite one) and prints
/// the public key.
pub fn keygen(out: &Path) -> ExitCode {
    match write_key(out) {
        Ok(public) => {
            println!("{public}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a fresh secret key to `out`; returns the public key in hex.
pub fn write_key(out: &Path) -> Result<String, String> {
    let id = Identity::generate().map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    writeln!(f, "# tutti secret key; public key {}", hex(&id.public()))
        .and_then(|_| writeln!(f, "{}", id.secret_hex()))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(hex(&id.public()))
}

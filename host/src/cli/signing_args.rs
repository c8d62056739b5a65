//! The command line of signing: `keygen`, `sign`, `verify`.

use std::path::PathBuf;

use clap::Subcommand;

/// Commands that make keys and sign or check component files (no database).
#[derive(Debug, Subcommand)]
pub enum SigningCommand {
    /// Make a signing key pair: NAME.key (the secret, mode 0600: keep it) and NAME.pub (one
    /// line: operators put it in their trust files). Never overwrites a key
    Keygen {
        /// The key's name (letters, digits, `.`, `_`, `-`)
        name: String,
        /// Where to write the two files
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Sign component files, adding to the signatures there: embedded (a `signature` section,
    /// the file rewritten, so its checksum changes) or --detached (FILE.sig beside it, the
    /// component's bytes unchanged: for one a database has applied already)
    Sign {
        /// The component files (*.wasm)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The secret key: a NAME.key from `keygen`, or an OpenSSH ed25519 key without a
        /// passphrase
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Write the signature to FILE.sig and leave the component as it is
        #[arg(long)]
        detached: bool,
    },
    /// Say who signed each component, as a trust file names them (FILE.sig, when there is
    /// one, is used instead of an embedded signature). Exits 1 unless every one is trusted
    Verify {
        /// The component files (*.wasm)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The trust file: `NAME KEY` lines, optional `min-signers N` and `revoked KEY`
        #[arg(long, value_name = "TRUST")]
        trust: PathBuf,
    },
}

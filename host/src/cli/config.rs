//! `hsm.toml`: an operator's settings in a file, so cron and systemd need no long command
//! lines and no particular working directory. Found with `--config FILE` (or `HSM_CONFIG`), else
//! `./hsm.toml` if there is one. Paths in it are relative to the file. `[env.NAME]` tables
//! override the top level for `--env NAME` (or `HSM_ENV`). Precedence: the command line, then
//! environment variables, then the file, then the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use super::args::{ConfiguredTargets, Global, OnErrorArg};

/// The file looked for in the working directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "hsm.toml";

/// A size in a settings file: bytes (`1048576`) or text (`"256MiB"`), as on the command line.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn parse(&self) -> Result<usize, String> {
        match self {
            Size::Bytes(bytes) => super::args::parse_size(&bytes.to_string()),
            Size::Text(text) => super::args::parse_size(text),
        }
    }
}

/// The settings a file may hold (each also a command-line option).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    database: Option<PathBuf>,
    migrations: Option<PathBuf>,
    backup_dir: Option<PathBuf>,
    keep_backups: Option<usize>,
    keep_backups_for: Option<String>,
    log_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    cache_max: Option<Size>,
    compiler: Option<String>,
    tracking_prefix: Option<String>,
    layout: Option<String>,
    timeout: Option<String>,
    max_memory: Option<Size>,
    lock_timeout: Option<u64>,
    single_transaction: Option<bool>,
    placeholders: Option<BTreeMap<String, String>>,
    require_signed: Option<PathBuf>,
    fleet: Option<FleetSettings>,
}

/// `[fleet]`: what `hsm-host fleet` takes when its command line does not say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetSettings {
    targets: Option<TargetsSetting>,
    parallel: Option<u16>,
    on_error: Option<OnErrorArg>,
    canary: Option<usize>,
}

/// `targets`: a targets file's path, or the targets themselves.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TargetsSetting {
    File(PathBuf),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    env: BTreeMap<String, Settings>,
}

/// The configuration file in force: `--config`, else `./hsm.toml` when it exists.
pub fn find(global: &Global) -> Option<PathBuf> {
    global.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_FILE);
        default.is_file().then_some(default)
    })
}

/// Fills every option of `global` that was neither given on the command line nor in the
/// environment from the configuration file (its `[env.NAME]` table first, when `--env NAME`).
pub fn apply(global: &mut Global, matches: &ArgMatches) -> Result<Option<PathBuf>> {
    let Some(path) = find(global) else {
        if let Some(env) = &global.env {
            bail!("--env {env} needs a configuration file (--config FILE, or ./{DEFAULT_FILE})");
        }
        return Ok(None);
    };
    let text = read_trusted(&path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    let mut file: File = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid configuration file", path.display()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let chosen = match &global.env {
        Some(name) => match file.env.remove(name) {
            Some(settings) => Some(settings),
            None => bail!(
                "{} has no [env.{name}] (it has: {})",
                path.display(),
                match file.env.is_empty() {
                    true => "none".to_owned(),
                    false => file.env.keys().cloned().collect::<Vec<_>>().join(", "),
                }
            ),
        },
        None => None,
    };
    // The environment's settings first, then the file's own.
    for settings in chosen.into_iter().chain([file.settings]) {
        fill(global, matches, settings, &base, &path)
            .with_context(|| format!("in the configuration file {}", path.display()))?;
    }
    Ok(Some(path))
}

/// The settings file's text, if it is one the operator controls. It chooses the database and
/// the migrations that run, so a file another user planted (an `hsm.toml` in a shared working
/// directory such as /tmp) or could change must not be read: a regular file (not a link) of
/// this user or root, writable by nobody else, at most 1 MiB.
fn read_trusted(path: &Path) -> Result<String> {
    let bytes = hsm_store::files::read_owned(path, 1 << 20).map_err(anyhow::Error::msg)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("it is not UTF-8 text"))
}

/// Whether `id` was left to its default (neither on the command line nor in the environment).
fn unset(matches: &ArgMatches, id: &str) -> bool {
    !matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

fn fill(
    global: &mut Global,
    matches: &ArgMatches,
    s: Settings,
    base: &Path,
    file: &Path,
) -> Result<()> {
    let path = |p: PathBuf| base.join(p);
    // Each key is taken once: the first table that sets it (the environment's) wins.
    macro_rules! take {
        ($id:literal, $field:ident, $value:expr) => {
            if let Some(value) = $value {
                if unset(matches, $id) && !global.from_config.contains(&$id) {
                    global.$field = value;
                    global.from_config.push($id);
                }
            }
        };
    }
    take!("database", database, s.database.map(path));
    take!("migrations", migrations, s.migrations.map(path));
    take!(
        "backup_dir",
        backup_dir,
        s.backup_dir.map(|p| Some(path(p)))
    );
    take!("keep_backups", keep_backups, s.keep_backups);
    let keep_for = s
        .keep_backups_for
        .map(|t| super::args::parse_age(&t).map(Some))
        .transpose()
        .map_err(|e| anyhow::anyhow!("keep_backups_for: {e}"))?;
    take!("keep_backups_for", keep_backups_for, keep_for);
    take!("log_file", log_file, s.log_file.map(|p| Some(path(p))));
    take!("cache_dir", cache_dir, s.cache_dir.map(|p| Some(path(p))));
    take!("tracking_prefix", tracking_prefix, s.tracking_prefix);
    let layout = s
        .layout
        .map(|l| hsm_host::pack::Layout::parse(&l).map(Some))
        .transpose()
        .map_err(|e| anyhow::anyhow!("layout: {e}"))?;
    take!("layout", layout, layout);
    let timeout = s
        .timeout
        .map(|t| super::args::parse_duration(&t))
        .transpose()
        .map_err(|e| anyhow::anyhow!("timeout: {e}"))?;
    take!("timeout", timeout, timeout);
    let max_memory = s
        .max_memory
        .map(|m| m.parse())
        .transpose()
        .map_err(|e| anyhow::anyhow!("max_memory: {e}"))?;
    take!("max_memory", max_memory, max_memory);
    let cache_max = s
        .cache_max
        .map(|m| m.parse())
        .transpose()
        .map_err(|e| anyhow::anyhow!("cache_max: {e}"))?;
    take!("cache_max", cache_max, cache_max);
    let compiler = s
        .compiler
        .map(|c| c.parse())
        .transpose()
        .map_err(|e| anyhow::anyhow!("compiler: {e}"))?;
    take!("compiler", compiler, compiler);
    take!("lock_timeout", lock_timeout, s.lock_timeout);
    take!(
        "require_signed",
        require_signed,
        s.require_signed.map(|p| Some(path(p)))
    );
    take!(
        "single_transaction",
        single_transaction,
        s.single_transaction
    );
    if let Some(fleet) = s.fleet {
        fill_fleet(global, fleet, base, file)?;
    }
    // Placeholders add up: the command line's win over the file's of the same name.
    if let Some(values) = s.placeholders {
        for (name, value) in values {
            if !global.placeholders.iter().any(|(n, _)| *n == name) {
                global.placeholders.push((name, value));
            }
        }
    }
    Ok(())
}

/// The `[fleet]` keys not already taken (from an `[env.NAME.fleet]` table); the command line
/// overrides them when `hsm-host fleet` runs.
fn fill_fleet(global: &mut Global, s: FleetSettings, base: &Path, file: &Path) -> Result<()> {
    let fleet = &mut global.fleet;
    if let Some(parallel) = s.parallel {
        if !(1..=256).contains(&parallel) {
            bail!("fleet.parallel: {parallel} is not in 1..=256");
        }
        fleet.parallel.get_or_insert(parallel);
    }
    if let Some(on_error) = s.on_error {
        fleet.on_error.get_or_insert(on_error);
    }
    if let Some(canary) = s.canary {
        fleet.canary.get_or_insert(canary);
    }
    if fleet.targets.is_none() {
        fleet.targets = s.targets.map(|targets| match targets {
            TargetsSetting::File(path) => ConfiguredTargets::File(base.join(path)),
            TargetsSetting::List(entries) => ConfiguredTargets::List {
                entries,
                base: base.to_owned(),
                origin: format!("fleet.targets in {}", file.display()),
            },
        });
    }
    Ok(())
}

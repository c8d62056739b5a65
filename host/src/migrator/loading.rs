//! What a run runs: a directory's components loaded into a [`Migrator`], and each step's
//! code found (compiled ahead, from the cache, or stored in the database for `down`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::Connection;

use super::*;

impl Migrator {
    /// Loads every `*.wasm` component of `dir` with a new [`Runtime`], with default [`Safety`].
    ///
    /// # Errors
    /// See [`source::scan_dir`]: unreadable directory, invalid component, duplicate version.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_dir_with(Runtime::new()?, dir)
    }

    /// Finds every `*.wasm` component of `dir` with `runtime` (and its limits).
    ///
    /// # Errors
    /// See [`source::scan_dir`].
    pub fn load_dir_with(runtime: Runtime, dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_dir_in(runtime, dir, None)
    }

    /// As [`Migrator::load_dir_with`], reading the directory's SQL migrations as `options`
    /// say (a layout, or `None` to recognise it from the file names; Flyway's placeholders).
    ///
    /// # Errors
    /// See [`source::scan_dir`].
    pub fn load_dir_in(
        runtime: Runtime,
        dir: impl AsRef<Path>,
        options: impl Into<crate::pack::SqlOptions>,
    ) -> Result<Self> {
        let (migrations, loaded) = source::scan_dir(&runtime, dir.as_ref(), options)?
            .into_iter()
            .map(|found| {
                let cell = OnceLock::new();
                if let Some(component) = found.component {
                    let _ = cell.set(component);
                }
                (found.info, cell)
            })
            .unzip();
        Ok(Self {
            migrations,
            loaded,
            runtime,
            safety: Safety::default(),
        })
    }

    /// A migrator over components already loaded with `runtime`, with default [`Safety`].
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] when two components share a version.
    pub fn new(runtime: Runtime, migrations: Vec<MigrationComponent>) -> Result<Self> {
        let (migrations, loaded) = source::sort_unique(migrations)?
            .into_iter()
            .map(|component| (component.info(), OnceLock::from(component)))
            .unzip();
        Ok(Self {
            migrations,
            loaded,
            runtime,
            safety: Safety::default(),
        })
    }

    /// This migrator's migrations and `other`'s together, by version (`test --with`: a new
    /// migration tested on top of the ones it builds on).
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] when both have a migration of one version.
    pub fn with_migrations_of(self, other: Migrator) -> Result<Self> {
        let mut all: Vec<(ComponentInfo, OnceLock<MigrationComponent>)> = self
            .migrations
            .into_iter()
            .zip(self.loaded)
            .chain(other.migrations.into_iter().zip(other.loaded))
            .collect();
        all.sort_by_key(|(info, _)| info.version());
        if let Some(pair) = all
            .windows(2)
            .find(|w| w[0].0.version() == w[1].0.version())
        {
            return Err(Error::DuplicateVersion {
                version: pair[0].0.version(),
                first: pair[0].0.path.clone(),
                second: pair[1].0.path.clone(),
            });
        }
        let (migrations, loaded) = all.into_iter().unzip();
        Ok(Self {
            migrations,
            loaded,
            runtime: self.runtime,
            safety: self.safety,
        })
    }

    /// Replaces the safety settings.
    pub fn with_safety(mut self, safety: Safety) -> Self {
        self.safety = safety;
        self
    }

    /// The safety settings in force.
    pub fn safety(&self) -> &Safety {
        &self.safety
    }

    /// The components, by ascending version.
    pub fn migrations(&self) -> &[ComponentInfo] {
        &self.migrations
    }

    pub(super) fn file_component(&self, version: u64) -> Option<&ComponentInfo> {
        self.migrations.iter().find(|m| m.version() == version)
    }

    /// Loads the code of these versions, in parallel, ahead of running them.
    pub(super) fn preload(&self, versions: &[u64]) -> Result<()> {
        source::parallel_map(versions, |v| self.component(*v).map(drop))
            .into_iter()
            .collect()
    }

    /// The code of the component with this version, loaded on first use.
    ///
    /// # Errors
    /// [`Error::Plan`] for a version no component has; as [`Runtime::load_file`];
    /// [`Error::InvalidComponent`] if the file changed since it was described.
    pub fn component(&self, version: u64) -> Result<&MigrationComponent> {
        let (info, loaded) = self.slot(version).ok_or_else(|| {
            let known: Vec<String> = self
                .migrations
                .iter()
                .map(|m| m.version().to_string())
                .collect();
            Error::Plan(plan::PlanError::UnknownTarget {
                target: version,
                available: known.join(", "),
            })
        })?;
        if let Some(component) = loaded.get() {
            return Ok(component);
        }
        let component = self.load_unchanged(info)?;
        Ok(loaded.get_or_init(|| component))
    }

    /// What is known of this version's file, and its code once loaded.
    pub(super) fn slot(
        &self,
        version: u64,
    ) -> Option<(&ComponentInfo, &OnceLock<MigrationComponent>)> {
        let index = self
            .migrations
            .iter()
            .position(|m| m.version() == version)?;
        Some((&self.migrations[index], &self.loaded[index]))
    }

    /// Loads `info`'s file, which must still be the component it described.
    pub(super) fn load_unchanged(&self, info: &ComponentInfo) -> Result<MigrationComponent> {
        let component = self.runtime.load_file(&info.path)?;
        if component.checksum() != info.checksum {
            return Err(Error::InvalidComponent {
                path: info.path.clone(),
                reason: "the file changed while hsm-host was running; run the command again".into(),
            });
        }
        Ok(component)
    }

    /// The code of every step, before anything changes: a bad file stops the run here. A
    /// component the compile cache holds compiled, from this very file unchanged, was checked
    /// when it was compiled: it is loaded when its step comes and dropped after it, so a run of
    /// a hundred migrations holds a few of them at a time, not all.
    pub(super) fn components_of<'a>(
        &'a self,
        plan: &plan::Plan,
        stored: &'a BTreeMap<u64, MigrationComponent>,
    ) -> Result<Vec<Planned<'a>>> {
        let mut later = BTreeMap::new();
        let mut now = Vec::new();
        for &version in plan.steps.iter().filter(|v| !stored.contains_key(v)) {
            match self.slot(version) {
                Some((info, loaded))
                    if loaded.get().is_none() && self.runtime.is_compiled(info) =>
                {
                    later.insert(version, info);
                }
                _ => now.push(version),
            }
        }
        self.preload(&now)?;
        plan.steps
            .iter()
            .map(|version| match (stored.get(version), later.get(version)) {
                (Some(component), _) => Ok(Planned::Loaded(component)),
                (None, Some(info)) => Ok(Planned::Compiled(info)),
                (None, None) => self.component(*version).map(Planned::Loaded),
            })
            .collect()
    }

    /// Calls `f` with each planned component in order, loading those not loaded yet on a
    /// thread of their own one step ahead (their loading overlaps the step before), and
    /// dropping each once `f` is done with it (elsewhere: unmapping code takes time). Stops
    /// at the first error.
    pub(super) fn each_component(
        &self,
        planned: Vec<Planned<'_>>,
        mut f: impl FnMut(&MigrationComponent) -> Result<()>,
    ) -> Result<()> {
        let to_load: Vec<&ComponentInfo> = planned
            .iter()
            .filter_map(|p| match p {
                Planned::Compiled(info) => Some(*info),
                Planned::Loaded(_) => None,
            })
            .collect();
        std::thread::scope(|scope| {
            let (send, loaded) = std::sync::mpsc::sync_channel(1);
            if !to_load.is_empty() {
                scope.spawn(move || {
                    for info in to_load {
                        // A stopped run drops the receiver: the send fails and this ends.
                        let component = self.load_unchanged(info).inspect(|component| {
                            // Read here rather than in the step (an error shows there again).
                            let _ = component.stored_form();
                        });
                        if send.send(component).is_err() {
                            break;
                        }
                    }
                });
            }
            for step in planned {
                match step {
                    Planned::Loaded(component) => f(component)?,
                    Planned::Compiled(_) => {
                        let component = loaded.recv().expect("the loader sends one per step")?;
                        f(&component)?;
                        crate::runtime::drop_elsewhere(component);
                    }
                }
            }
            Ok(())
        })
    }

    /// The components that applied migrations whose file changed or is gone, from the bytes
    /// stored at apply time, for the versions `rolled_back` says the run may roll back (only
    /// those are loaded: an old migration below the target is neither run nor checked).
    /// (Where the file is unchanged, it is the component.)
    pub(super) fn stored_for_down(
        &self,
        tracking: &Tracking,
        conn: &Connection,
        assessment: &Assessment<'_>,
        rolled_back: impl Fn(u64) -> bool,
    ) -> Result<BTreeMap<u64, MigrationComponent>> {
        let mut stored = BTreeMap::new();
        for &(version, recorded) in &assessment.from_store {
            if !rolled_back(version) {
                continue;
            }
            let Some(bytes) = tracking.stored_component(conn, recorded)? else {
                continue;
            };
            let origin = PathBuf::from(format!(
                "<component of migration {version} stored in the database, sha256 {}>",
                &recorded[..12.min(recorded.len())]
            ));
            tracing::info!(
                "migration {version}: its file changed or is gone; using the component that \
                 applied it"
            );
            // `--require-signed`: the stored component is held to today's trust file (its
            // detached signature was kept with it).
            if let Some(policy) = self.runtime.signed_only() {
                let sha256 = crate::runtime::sha256_hex(&bytes);
                let detached = tracking.stored_signature(conn, &sha256)?;
                let subject = format!("the stored component of migration {version}");
                if detached.is_none() && hsm_signing::signature_count(&bytes, None) == Ok(0) {
                    return Err(Error::Untrusted {
                        subject,
                        reason: "it carries no signature, and none was kept with it (applied \
                                 unsigned, or signed detached before hsm-host kept signatures): \
                                 put its signed file (and FILE.sig) back in the migrations \
                                 directory; if a signed file of the same migration is there \
                                 now (re-packed and signed), `hsm-host repair` records it"
                            .into(),
                    });
                }
                policy.check_bytes(&subject, &bytes, detached)?;
            }
            stored.insert(version, self.runtime.load(origin, &bytes)?);
        }
        Ok(stored)
    }
}

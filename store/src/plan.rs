//! What to run, as a pure function of the migrations available and the versions applied.
//! No I/O here, so every rule is tested directly.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// Which way a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Apply.
    Up,
    /// Roll back.
    Down,
}

impl Direction {
    /// `up` or `down`, as stored in `migration_history.direction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migration the host has a component for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Its version.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// Whether it has a `down`.
    pub reversible: bool,
}

/// The versions to run, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Which way the run goes.
    pub direction: Direction,
    /// Versions in the order they run (ascending up, descending down).
    pub steps: Vec<u64>,
    /// The current version before the run.
    pub from: u64,
    /// The current version once every step succeeded.
    pub to: u64,
}

/// Why a request cannot be planned. Nothing has run when one of these is returned.
/// (Each variant's message says what its fields are.)
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("there is no migration with version {target} (available: {available})")]
    UnknownTarget { target: u64, available: String },

    #[error(
        "the database is already at version {current}, above target {target}; \
         to go back, run `hsm-host down {target}`"
    )]
    UpTargetBelowCurrent { target: u64, current: u64 },

    #[error(
        "the database is at version {current}, below target {target}; \
         to go forward, run `hsm-host up {target}`"
    )]
    DownTargetAboveCurrent { target: u64, current: u64 },

    #[error(
        "migration {version} ({name}) is irreversible, so the database cannot go below version \
         {version}: {}", way_back(backup.as_deref())
    )]
    Irreversible {
        version: u64,
        name: String,
        /// The backup taken before it was applied (its row's `backup_path`), if one was.
        backup: Option<std::path::PathBuf>,
    },

    #[error("nothing is applied, so there is nothing to redo")]
    NothingToRedo,

    #[error(
        "migration {version} is applied but no component for it is in the migrations directory: \
         put its .wasm file back to roll it back"
    )]
    MissingComponent { version: u64 },

    #[error(
        "migration {version} ({name}) is pending but the database is already at version \
         {current}: a migration older than the applied ones was added; give it a version above \
         {current}"
    )]
    OutOfOrder {
        version: u64,
        name: String,
        current: u64,
    },
}

/// How to get below an irreversible migration: the backup taken before it, if it remains.
fn way_back(backup: Option<&std::path::Path>) -> String {
    match backup {
        Some(path) if path.is_file() => format!(
            "to go back past it, restore the backup taken before it was applied: `hsm-host \
             restore {}`",
            path.display()
        ),
        Some(path) => format!(
            "the backup taken before it was applied ({}) is gone; restore an older backup of \
             your own, if you have one",
            path.display()
        ),
        None => "no backup was taken before it was applied (or its record is gone); restore \
                 a backup of your own, if you have one"
            .to_owned(),
    }
}

impl PlanError {
    /// Whether the operator asked for something impossible (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PlanError::UnknownTarget { .. }
                | PlanError::UpTargetBelowCurrent { .. }
                | PlanError::DownTargetAboveCurrent { .. }
                | PlanError::NothingToRedo
        )
    }
}

/// The highest applied version, 0 for none.
pub fn current_version(applied: &BTreeSet<u64>) -> u64 {
    applied.last().copied().unwrap_or(0)
}

/// Plans `up [target]`: every pending migration up to `target` (all when `None`), ascending.
///
/// # Errors
/// [`PlanError::UnknownTarget`], [`PlanError::UpTargetBelowCurrent`], [`PlanError::OutOfOrder`].
pub fn plan_up(
    available: &[Available],
    applied: &BTreeSet<u64>,
    target: Option<u64>,
) -> Result<Plan, PlanError> {
    let current = current_version(applied);
    if let Some(target) = target {
        check_known(available, applied, target)?;
        if target < current {
            return Err(PlanError::UpTargetBelowCurrent { target, current });
        }
    }
    let mut pending: Vec<&Available> = available
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .filter(|m| target.is_none_or(|t| m.version <= t))
        .collect();
    pending.sort_by_key(|m| m.version);
    if let Some(old) = pending.iter().find(|m| m.version < current) {
        return Err(PlanError::OutOfOrder {
            version: old.version,
            name: old.name.clone(),
            current,
        });
    }
    let steps: Vec<u64> = pending.iter().map(|m| m.version).collect();
    let to = steps.last().copied().unwrap_or(current);
    Ok(Plan {
        direction: Direction::Up,
        steps,
        from: current,
        to,
    })
}

/// Plans `down [target]`: without a target, the newest applied migration; with one, every
/// applied migration above it, newest first. `target` 0 rolls back everything.
///
/// # Errors
/// [`PlanError::UnknownTarget`], [`PlanError::DownTargetAboveCurrent`],
/// [`PlanError::MissingComponent`], [`PlanError::Irreversible`]; checked for every step before
/// anything runs, so a rollback never stops halfway on a step known to be impossible.
pub fn plan_down(
    available: &[Available],
    applied: &BTreeSet<u64>,
    target: Option<u64>,
) -> Result<Plan, PlanError> {
    let current = current_version(applied);
    let steps: Vec<u64> = match target {
        None => applied.last().copied().into_iter().collect(),
        Some(target) => {
            if target != 0 {
                check_known(available, applied, target)?;
            }
            if target > current {
                return Err(PlanError::DownTargetAboveCurrent { target, current });
            }
            applied.range(target + 1..).rev().copied().collect()
        }
    };
    for &version in &steps {
        let Some(migration) = available.iter().find(|m| m.version == version) else {
            return Err(PlanError::MissingComponent { version });
        };
        if !migration.reversible {
            return Err(PlanError::Irreversible {
                version,
                name: migration.name.clone(),
                backup: None,
            });
        }
    }
    let remaining = applied.iter().filter(|v| !steps.contains(v));
    let to = remaining.max().copied().unwrap_or(0);
    Ok(Plan {
        direction: Direction::Down,
        steps,
        from: current,
        to,
    })
}

fn check_known(
    available: &[Available],
    applied: &BTreeSet<u64>,
    target: u64,
) -> Result<(), PlanError> {
    if available.iter().any(|m| m.version == target) || applied.contains(&target) {
        return Ok(());
    }
    let versions: BTreeSet<u64> = available.iter().map(|m| m.version).collect();
    Err(PlanError::UnknownTarget {
        target,
        available: describe_versions(&versions),
    })
}

fn describe_versions(versions: &BTreeSet<u64>) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    let list: Vec<String> = versions.iter().map(u64::to_string).collect();
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available(specs: &[(u64, bool)]) -> Vec<Available> {
        specs
            .iter()
            .map(|&(version, reversible)| Available {
                version,
                name: format!("m{version}"),
                reversible,
            })
            .collect()
    }

    fn set(versions: &[u64]) -> BTreeSet<u64> {
        versions.iter().copied().collect()
    }

    #[test]
    fn up_runs_every_pending_migration_in_order() {
        let all = available(&[(3, true), (1, true), (2, true)]);
        let plan = plan_up(&all, &set(&[1]), None).unwrap();
        assert_eq!(plan.steps, vec![2, 3]);
        assert_eq!((plan.from, plan.to), (1, 3));
    }

    #[test]
    fn up_stops_at_the_target() {
        let all = available(&[(1, true), (2, true), (3, true)]);
        assert_eq!(plan_up(&all, &set(&[]), Some(2)).unwrap().steps, vec![1, 2]);
    }

    #[test]
    fn up_with_nothing_pending_is_an_empty_plan() {
        let all = available(&[(1, true)]);
        let plan = plan_up(&all, &set(&[1]), None).unwrap();
        assert!(plan.steps.is_empty());
        assert_eq!((plan.from, plan.to), (1, 1));
    }

    #[test]
    fn up_rejects_unknown_and_lower_targets() {
        let all = available(&[(1, true), (2, true)]);
        let unknown = plan_up(&all, &set(&[]), Some(9)).unwrap_err();
        assert!(matches!(
            unknown,
            PlanError::UnknownTarget { target: 9, .. }
        ));
        assert!(unknown.to_string().contains("available: 1, 2"));
        let lower = plan_up(&all, &set(&[1, 2]), Some(1)).unwrap_err();
        assert_eq!(
            lower,
            PlanError::UpTargetBelowCurrent {
                target: 1,
                current: 2
            }
        );
        assert!(lower.is_usage());
    }

    #[test]
    fn up_refuses_a_migration_older_than_the_applied_ones() {
        let all = available(&[(1, true), (2, true), (3, true)]);
        let err = plan_up(&all, &set(&[1, 3]), None).unwrap_err();
        assert!(matches!(
            err,
            PlanError::OutOfOrder {
                version: 2,
                current: 3,
                ..
            }
        ));
    }

    #[test]
    fn down_defaults_to_one_step() {
        let all = available(&[(1, true), (2, true), (3, true)]);
        let plan = plan_down(&all, &set(&[1, 2, 3]), None).unwrap();
        assert_eq!(plan.steps, vec![3]);
        assert_eq!((plan.from, plan.to), (3, 2));
    }

    #[test]
    fn down_to_a_target_runs_newest_first_and_zero_means_all() {
        let all = available(&[(1, true), (2, true), (3, true)]);
        assert_eq!(
            plan_down(&all, &set(&[1, 2, 3]), Some(1)).unwrap().steps,
            vec![3, 2]
        );
        let plan = plan_down(&all, &set(&[1, 2, 3]), Some(0)).unwrap();
        assert_eq!(plan.steps, vec![3, 2, 1]);
        assert_eq!(plan.to, 0);
    }

    #[test]
    fn down_on_an_empty_database_does_nothing() {
        let all = available(&[(1, true)]);
        assert!(plan_down(&all, &set(&[]), None).unwrap().steps.is_empty());
    }

    #[test]
    fn down_rejects_targets_above_current_or_unknown() {
        let all = available(&[(1, true), (2, true), (3, true)]);
        assert_eq!(
            plan_down(&all, &set(&[1]), Some(3)).unwrap_err(),
            PlanError::DownTargetAboveCurrent {
                target: 3,
                current: 1
            }
        );
        assert!(matches!(
            plan_down(&all, &set(&[1]), Some(7)).unwrap_err(),
            PlanError::UnknownTarget { target: 7, .. }
        ));
    }

    #[test]
    fn down_refuses_the_whole_range_when_one_step_is_irreversible() {
        let all = available(&[(1, true), (2, false), (3, true)]);
        let err = plan_down(&all, &set(&[1, 2, 3]), Some(0)).unwrap_err();
        assert!(matches!(err, PlanError::Irreversible { version: 2, .. }));
        assert!(!err.is_usage());
        // Above the irreversible one is fine.
        assert_eq!(
            plan_down(&all, &set(&[1, 2, 3]), Some(2)).unwrap().steps,
            vec![3]
        );
    }

    #[test]
    fn down_needs_the_component_of_every_step() {
        let all = available(&[(1, true)]);
        assert_eq!(
            plan_down(&all, &set(&[1, 2]), None).unwrap_err(),
            PlanError::MissingComponent { version: 2 }
        );
    }
}

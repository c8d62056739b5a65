//! What the author commands print: `inspect`, `test`, `new`, `export`.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use hsm_host::error::human_bytes;

use super::json;

/// `hsm-host inspect`: one block per file, or `{"components": [...]}`.
pub fn inspected(
    found: &[hsm_host::runtime::Inspection],
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "components": found }), out);
    }
    for (i, item) in found.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", item.path.display())?;
        if let Some(m) = &item.metadata {
            writeln!(out, "  version      {}", m.version)?;
            writeln!(out, "  name         {}", m.name)?;
            writeln!(out, "  description  {}", m.description)?;
            writeln!(
                out,
                "  reversible   {}",
                if m.reversible { "yes" } else { "no" }
            )?;
        }
        if let (Some(contract), Some(world)) = (&item.contract, &item.world) {
            writeln!(out, "  contract     {contract} (world {world})")?;
        }
        if item.contract.is_some() {
            match item.dialects.is_empty() {
                true => writeln!(out, "  dialects     sqlite (it declares none)")?,
                false => writeln!(out, "  dialects     {}", item.dialects.join(", "))?,
            }
        }
        if !item.imports.is_empty() {
            writeln!(out, "  imports      {}", item.imports.join(", "))?;
        }
        let signatures = &item.signatures;
        let where_ = match signatures.detached {
            true => " (detached, in FILE.sig)",
            false => "",
        };
        match (signatures.count, signatures.signers.is_empty()) {
            (0, _) => writeln!(out, "  signed       no")?,
            (n, true) => writeln!(
                out,
                "  signed       {n} signature(s){where_}; --require-signed TRUST says by whom"
            )?,
            (_, false) => {
                let names: Vec<String> = signatures
                    .signers
                    .iter()
                    .map(|s| format!("{} ({})", s.name, s.fingerprint))
                    .collect();
                writeln!(out, "  signed       by {}{where_}", names.join(", "))?;
            }
        }
        writeln!(out, "  size         {}", human_bytes(item.size))?;
        writeln!(out, "  sha256       {}", item.sha256)?;
        match &item.problem {
            None => writeln!(out, "  accepted     yes")?,
            Some(problem) => writeln!(out, "  accepted     no: {problem}")?,
        }
    }
    Ok(())
}

/// An error under `--json` (see [`JSON_SHAPE_VERSION`]):
/// `{"error": {"message", "exit_code", "meaning", "kind", ...}}`. `meaning` is `usage` (exit
/// code 2: the request was wrong, nothing changed) or `failure` (exit code 1). A failed
/// migration adds `version`, `name`, `direction`, `cause` and `completed` (the steps of the
/// run that stay done).
pub fn exported(path: &std::path::Path, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "exported": path }), out);
    }
    writeln!(out, "wrote {}", path.display())?;
    Ok(())
}

/// `hsm-host test`: one line per migration, and what differed for a failure.
pub fn tested(
    report: &hsm_host::roundtrip::TestReport,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    use hsm_host::roundtrip::Outcome;
    if as_json {
        return json(report, out);
    }
    if report.cases.is_empty() {
        writeln!(
            out,
            "Nothing to test: no migration is pending on the scratch database."
        )?;
        return Ok(());
    }
    for case in &report.cases {
        match &case.outcome {
            Outcome::Pass => writeln!(out, "pass  {:>4} {}", case.version, case.name)?,
            Outcome::Irreversible => writeln!(
                out,
                "skip  {:>4} {} (irreversible: applied, not rolled back)",
                case.version, case.name
            )?,
            Outcome::Fail { reason } => {
                writeln!(out, "FAIL  {:>4} {}: {reason}", case.version, case.name)?
            }
            Outcome::NotTested { reason } => writeln!(
                out,
                "----  {:>4} {} (not tested: {reason})",
                case.version, case.name
            )?,
        }
    }
    let count = |f: fn(&Outcome) -> bool| report.cases.iter().filter(|c| f(&c.outcome)).count();
    writeln!(
        out,
        "{} passed, {} irreversible, {} failed, {} not tested.",
        count(|o| matches!(o, Outcome::Pass)),
        count(|o| matches!(o, Outcome::Irreversible)),
        count(|o| matches!(o, Outcome::Fail { .. })),
        count(|o| matches!(o, Outcome::NotTested { .. }))
    )?;
    Ok(())
}

/// `hsm-host new`: what was made, and the next commands.
pub fn scaffolded_module(
    made: &hsm_host::scaffold::Scaffolded,
    build: &str,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(
            &serde_json::json!({ "version": made.version, "files": made.files, "build": build }),
            out,
        );
    }
    writeln!(out, "Made migration {}:", made.version)?;
    for file in &made.files {
        writeln!(out, "  {}", file.display())?;
    }
    writeln!(
        out,
        "Next: write up/down, then build it (./scripts/guest-tools.sh installs the tool under \
         target/guest-tools/; put its bin directory on PATH):"
    )?;
    writeln!(out, "  {build}")?;
    writeln!(out, "then `hsm-host test` and `hsm-host up`.")?;
    Ok(())
}

/// `hsm-host new`: what was made and the next commands (for a Rust crate, `rust_workspace`
/// is the workspace it is in and the migrations directory).
pub fn scaffolded(
    made: &hsm_host::scaffold::Scaffolded,
    rust_workspace: Option<(&Path, &Path)>,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(made, out);
    }
    writeln!(out, "Made migration {}:", made.version)?;
    for file in &made.files {
        writeln!(out, "  {}", file.display())?;
    }
    if rust_workspace.is_none() {
        writeln!(
            out,
            "Next: edit the SQL, then `hsm-host test` and `hsm-host up` (the directory is read \
             as it is)."
        )?;
    } else if let Some((workspace, migrations)) = rust_workspace {
        // Paths from where the command ran, so each line can be pasted as it is.
        let prefix = format!("v{:03}_", made.version);
        let crate_name = made
            .files
            .iter()
            .filter(|file| file.ends_with("src/lib.rs"))
            .filter_map(|lib| lib.parent()?.parent()?.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .find(|name| name.starts_with(&prefix))
            .unwrap_or_default();
        let release = workspace.join("target/wasm32-wasip2/release");
        writeln!(out, "Next: write up/down in src/lib.rs, then:")?;
        writeln!(
            out,
            "  (cd {} && cargo build --release --target wasm32-wasip2)",
            workspace.display()
        )?;
        writeln!(out, "  hsm-host test --migrations {}", release.display())?;
        writeln!(
            out,
            "  cp {} {}/",
            release.join(format!("{crate_name}.wasm")).display(),
            migrations.display()
        )?;
        writeln!(out, "  hsm-host up")?;
    }
    Ok(())
}

//! One function per subcommand; `run` opens the connection and dispatches.

mod domain;
mod host;
pub mod migrate;
mod migrate_jobs;

use anyhow::Context as _;
use migrated_client::{Connection, OpenFlags};

use crate::args::{Cli, Command};

/// Runs one parsed command line; returns what to print on stdout.
///
/// # Errors
/// Any failure, with context naming what was being done (printed by `main`
/// as `error: ...` lines).
pub async fn run(cli: Cli) -> anyhow::Result<String> {
    let uri = cli
        .connect
        .clone()
        .unwrap_or_else(migrated_client::uri::default_uri);
    let conn = Connection::open(
        &uri,
        OpenFlags {
            readonly: cli.readonly,
        },
    )
    .await
    .with_context(|| format!("failed to connect to the hypervisor at '{uri}'"))?;
    let json = cli.json;
    let result = dispatch(&conn, cli).await;
    // Like virsh, a failed CONNECT_CLOSE (e.g. the daemon went away after
    // answering) does not turn a completed command into a failure: the
    // socket is shut down either way and nothing is left to clean up.
    let _ = conn.close().await;
    let mut output = result?;
    if !json {
        // virsh ends every command's output with an empty line
        output.push('\n');
    }
    Ok(output)
}

async fn dispatch(conn: &Connection, cli: Cli) -> anyhow::Result<String> {
    let json = cli.json;
    match cli.command {
        Command::List(args) => domain::list(conn, &args, json).await,
        Command::Define { file, validate } => domain::define(conn, &file, validate, json).await,
        Command::Undefine { domain } => domain::undefine(conn, &domain, json).await,
        Command::Start { domain, paused } => domain::start(conn, &domain, paused, json).await,
        Command::Destroy { domain } => domain::destroy(conn, &domain, json).await,
        Command::Suspend { domain } => domain::suspend(conn, &domain, json).await,
        Command::Resume { domain } => domain::resume(conn, &domain, json).await,
        Command::Shutdown { domain } => domain::shutdown(conn, &domain, json).await,
        Command::Dominfo { domain } => domain::dominfo(conn, &domain, json).await,
        Command::Domstate { domain, reason } => domain::domstate(conn, &domain, reason, json).await,
        Command::Dumpxml(args) => domain::dumpxml(conn, &args, json).await,
        Command::Autostart { domain, disable } => {
            domain::autostart(conn, &domain, disable, json).await
        }
        Command::Capabilities => host::capabilities(conn, json).await,
        Command::Version { daemon } => host::version(conn, daemon, json).await,
        Command::Hostname => host::hostname(conn, json).await,
        Command::Uri => host::uri(conn, json).await,
        Command::Nodeinfo => host::nodeinfo(conn, json).await,
        Command::Migrate(args) => migrate::migrate(conn, &args, json).await,
        Command::Domstats(args) => domain::domstats(conn, &args, json).await,
        Command::Domjobinfo { domain, completed } => {
            migrate_jobs::domjobinfo(conn, &domain, completed, json).await
        }
        Command::Domjobabort { domain } => migrate_jobs::domjobabort(conn, &domain, json).await,
        Command::MigrateSetspeed { domain, bandwidth } => {
            migrate_jobs::set_speed(conn, &domain, bandwidth, json).await
        }
        Command::MigrateGetspeed { domain } => migrate_jobs::get_speed(conn, &domain, json).await,
        Command::MigrateSetmaxdowntime { domain, downtime } => {
            migrate_jobs::set_max_downtime(conn, &domain, downtime, json).await
        }
        Command::MigrateGetmaxdowntime { domain } => {
            migrate_jobs::get_max_downtime(conn, &domain, json).await
        }
        Command::MigrationStatus { domain } => {
            migrate_jobs::migration_status(conn, &domain, json).await
        }
        // handled in main before any connection is opened
        Command::Completions { .. } => Ok(String::new()),
    }
}

/// A typed parameter's value as plain JSON (a number, boolean or string),
/// for `--json` output.
fn typed_json(value: &migrated_core::typed_params::TypedValue) -> serde_json::Value {
    use migrated_core::typed_params::TypedValue;
    match value {
        TypedValue::Int(v) => serde_json::json!(v),
        TypedValue::UInt(v) => serde_json::json!(v),
        TypedValue::LLong(v) => serde_json::json!(v),
        TypedValue::ULLong(v) => serde_json::json!(v),
        TypedValue::Double(v) => serde_json::json!(v),
        TypedValue::Boolean(v) => serde_json::json!(v),
        TypedValue::String(v) => serde_json::json!(v),
    }
}

//! A private PostgreSQL server for tests that need settings the shared server does not have
//! (prepared transactions: `max_prepared_transactions` is 0 by default) or a server nothing
//! else uses: its own data directory and port, created with `initdb`, started with `pg_ctl`,
//! stopped and deleted on drop.
//!
//! The binaries come from Debian's packages (`scripts/postgres.sh start` installs them): the
//! newest `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`, else `PATH`.
//! `initdb` and `pg_ctl` refuse to run as root, and tests run as root in CI: then they run as
//! the `postgres` user (`runuser -u postgres --`, which the package creates), in a directory
//! handed to it.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// The role, and the OS user when the tests run as root, that owns the server.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server of the test's own, with prepared transactions enabled
/// (`max_prepared_transactions = 10`), trusting every connection from 127.0.0.1; stopped
/// (`pg_ctl stop -m immediate`) and deleted on drop.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    bindir: PathBuf,
    /// Holds the data directory, the socket and the log; deleted last.
    dir: TempDir,
    /// Whether `initdb` and `pg_ctl` run as [`SUPERUSER`] (the tests run as root).
    as_postgres: bool,
    running: bool,
}

impl PgServer {
    /// Creates a cluster in a fresh temporary directory and starts it on a free port.
    ///
    /// # Errors
    ///
    /// When the server binaries are missing (`scripts/postgres.sh start` installs them), or
    /// `initdb` or `pg_ctl start` fail (with their output and the server's log).
    pub fn start() -> anyhow::Result<Self> {
        let bindir = bindir()?;
        let dir = tempfile::tempdir()?;
        let as_postgres = std::fs::metadata(dir.path())?.uid() == 0;
        if as_postgres {
            // The server's files must be its own; root removes them all the same on drop.
            run(Command::new("chown")
                .arg(format!("{SUPERUSER}:"))
                .arg(dir.path()))
            .with_context(|| {
                format!(
                    "handing {} to the `{SUPERUSER}` user (running as root, which initdb \
                         refuses)",
                    dir.path().display()
                )
            })?;
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = PgServer {
            port,
            bindir,
            dir,
            as_postgres,
            running: false,
        };
        server.init()?;
        server.run_pg_ctl()?;
        Ok(server)
    }

    /// The server's URL, as the superuser, database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `bin` from the server's binaries, as the user that may run it.
    fn command(&self, bin: &str) -> Command {
        let program = self.bindir.join(bin);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", SUPERUSER, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn init(&self) -> anyhow::Result<()> {
        run(self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            // A throwaway cluster: nothing to make durable.
            .arg("--no-sync"))
        .context("initdb of a private PostgreSQL cluster")
    }

    fn run_pg_ctl(&mut self) -> anyhow::Result<()> {
        // pg_ctl hands `-o` to a shell: the temporary directory's path has no spaces.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_prepared_transactions=10 \
             -c max_connections=40 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let started = run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o"])
            .arg(options)
            .arg("start"));
        if let Err(error) = started {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            return Err(error.context(format!(
                "starting a private PostgreSQL on port {}; its log:\n{log}",
                self.port
            )));
        }
        self.running = true;
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            // Immediate: the test is over, nothing in the cluster is kept.
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// Where `initdb` and `pg_ctl` are.
fn bindir() -> anyhow::Result<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    // Debian keeps each major version's server binaries apart; the newest wins.
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_initdb(bin))
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    let configured = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(bin) = configured.filter(|bin| has_initdb(bin)) {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).find(|dir| has_initdb(dir)))
        .unwrap_or_default();
    on_path.context(
        "no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin, \
         `pg_config --bindir` or PATH: install them with `scripts/postgres.sh start`",
    )
}

/// Runs `command` to its end; fails with its output unless it succeeds.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let output: Output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

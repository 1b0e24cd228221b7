//! The `latch` binary as an operator types it, on a test app's database.

use super::TestApp;

/// A `latch` command line for tests of the CLI: a directory whose `latch.toml` defines each of
/// `providers` (key, scopes as TOML) against the fake provider at `fake_url`, on `app`'s database.
pub struct Cli {
    dir: tempfile::TempDir,
    database_url: String,
}

impl Cli {
    pub fn new(app: &TestApp, fake_url: &str, providers: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let toml: String = providers
            .iter()
            .map(|(key, scopes)| {
                format!(
                    "[providers.{key}]\nclient_id = \"client-{key}\"\nauthorization_url = \"{fake_url}/authorize\"\n\
                     token_url = \"{fake_url}/token\"\nscopes = {scopes}\n\
                     identity = {{ url = \"{fake_url}/userinfo\", account_identifier = \"$.sub\" }}\n"
                )
            })
            .collect();
        std::fs::write(dir.path().join("latch.toml"), toml).unwrap();
        Self { dir, database_url: app.db.url.clone() }
    }

    /// `latch --config latch.toml ARGS`, to run as the test likes.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = crate::harness::latch_command(self.dir.path(), &self.database_url);
        cmd.args(["--config", "latch.toml"]).args(args);
        cmd
    }

    /// Runs `latch --config latch.toml ARGS`: success, stdout, stderr.
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.command(args).output().unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }
}

//! `latch init`: a commented `latch.toml` and a fresh master key file, both readable by their
//! owner only, then what to do next. It never overwrites: an existing file stops it before
//! anything is written.

use crate::state::write_private;
use crate::vault::MasterKey;
use std::path::Path;

/// The file `latch init` writes: every key, commented with its default and meaning.
pub const TEMPLATE: &str = include_str!("init.toml");

/// Writes `latch.toml` and `master.key` into `dir` (created if missing); returns the next steps.
pub fn init(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (config, key) = (dir.join("latch.toml"), dir.join("master.key"));
    if let Some(existing) = [&config, &key].into_iter().find(|p| p.exists()) {
        return Err(format!("{} already exists; nothing was written", existing.display()));
    }
    write_private(&key, &format!("{}\n", MasterKey::generate_base64()))
        .map_err(|e| format!("cannot write {}: {e}", key.display()))?;
    if let Err(e) = write_private(&config, TEMPLATE) {
        let _ = std::fs::remove_file(&key);
        return Err(format!("cannot write {}: {e}", config.display()));
    }
    let cd = if dir == Path::new(".") { String::new() } else { format!("  cd {}\n", dir.display()) };
    Ok(format!(
        "wrote {config} (every key, commented) and {key} (the master key; mode 0600).\n\
         Back up master.key with the database: one without the other restores nothing.\n\
         Next:\n{cd}  \
         # in latch.toml: allowed_origins (your app's pages) and a [providers.KEY] table\n  \
         KEY=$(latch api-keys create --name backend)\n  \
         latch secret add --provider slack      # its client secret, stored encrypted\n  \
         latch serve",
        config = config.display(),
        key = key.display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::TEMPLATE;
    use crate::config::{Config, FileConfig};

    /// Keys only shown as examples: they have no default, or uncommented they mean something else.
    const EXAMPLES: [&str; 6] = ["public_url", "admin_listen", "database_url", "widget_dir", "client_id", "scopes"];

    /// The keys serde expects in a table, from its own "unknown field" message.
    fn expected_keys<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let err = toml::from_str::<T>("no_such_key = 1").unwrap_err().message().to_owned();
        let list = err.split("expected one of").nth(1).unwrap_or_else(|| panic!("{err}"));
        list.split(',').map(|k| k.trim().trim_matches('`').to_owned()).collect()
    }

    #[test]
    fn the_template_names_every_key() {
        let keys = [
            expected_keys::<FileConfig>(),
            expected_keys::<crate::config::HttpSettings>(),
            expected_keys::<crate::config::RateLimitSettings>(),
            expected_keys::<crate::config::HealthSettings>(),
        ];
        for key in keys.iter().flatten().filter(|k| k.as_str() != "providers") {
            let named = TEMPLATE
                .lines()
                .map(|l| l.trim_start_matches("# "))
                .any(|l| l.starts_with(&format!("{key} = ")) || l == format!("[{key}]"));
            assert!(named, "latch init's template does not describe {key}");
        }
    }

    #[test]
    fn the_commented_values_are_the_defaults() {
        let uncommented: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with("[providers.") => l.to_owned(),
                Some(rest) if rest.starts_with('[') => rest.to_owned(),
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ') && !EXAMPLES.contains(&k)) =>
                {
                    rest.to_owned()
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = std::path::Path::new("/srv/latch");
        let env = |_: &str| None;
        let as_written: FileConfig = toml::from_str(TEMPLATE).unwrap();
        let uncommented: FileConfig = toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        let resolve = |f: FileConfig| format!("{:?}", Config::resolve(f.relative_to(dir), env, false).unwrap());
        assert_eq!(resolve(uncommented), resolve(as_written));
    }
}

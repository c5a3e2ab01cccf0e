//! What `read_config` answers beyond the plugin's cfg: the values Hindsight adds to every
//! plugin's configuration.
//!
//! Hindsight appends them to each cfg before the plugin sees it, overriding a cfg key of the
//! same name; Blink gives them where the cfg has no such key, so a plugin's own `path` or
//! `Logger` key reads back as written (on Hindsight it would be lost; no plugin written for
//! Hindsight can rely on that). The values: `Hostname`, `Pid`, the module
//! search paths `path` and `cpath`, `max_message_size`, and for input and output plugins
//! `output_path`, `output_size`, `sandbox_load_path` and `sandbox_run_path`; then `Logger`
//! (the plugin's name), its limits, `ticker_interval`, `preserve_data` and `log_level`, with
//! `thread` for analysis and `async_buffer_size` for output plugins. Plugins rely on them:
//! `heka.alert`'s prefix reads `Logger`, the logfile outputs write under `output_path`.

use std::path::{Path, PathBuf};

use crate::plugin::{CfgValue, PluginConfig, PluginKind};

/// Where the deployment keeps things, as Hindsight tells input and output plugins.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub output_path: PathBuf,
    pub output_size: u64,
    pub sandbox_load_path: PathBuf,
    pub sandbox_run_path: PathBuf,
}

/// The syslog level Hindsight runs at by default (informational).
const LOG_LEVEL: f64 = 6.0;

fn text(s: impl AsRef<[u8]>) -> CfgValue {
    CfgValue::String(s.as_ref().to_vec())
}

fn path(p: &Path) -> CfgValue {
    text(p.as_os_str().as_encoded_bytes())
}

/// Lua's search template for modules in `dirs`: `dir/?.lua;…`.
fn search_path(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| format!("{}/?.lua", d.display()))
        .collect::<Vec<_>>()
        .join(";")
}

/// The values `read_config` gives where `config` has no key of their name, in Hindsight's
/// order.
pub fn defaults(
    config: &PluginConfig,
    hostname: &str,
    pid: i32,
    lua_paths: &[PathBuf],
    max_message_size: usize,
    deployment: &Deployment,
) -> Vec<(String, CfgValue)> {
    let number = |n: f64| CfgValue::Number(n);
    let mut out = vec![
        ("Hostname".to_owned(), text(hostname)),
        ("Pid".to_owned(), number(pid as f64)),
        ("path".to_owned(), text(search_path(lua_paths))),
        // Blink loads no C modules: its host modules are built in.
        ("cpath".to_owned(), text("")),
        // Every kind: analysis plugins size their payloads by it (moz_ingest's monitors).
        (
            "max_message_size".to_owned(),
            number(max_message_size as f64),
        ),
    ];
    if config.kind != PluginKind::Analysis {
        out.extend([
            ("output_path".to_owned(), path(&deployment.output_path)),
            (
                "output_size".to_owned(),
                number(deployment.output_size as f64),
            ),
            (
                "sandbox_load_path".to_owned(),
                path(&deployment.sandbox_load_path),
            ),
            (
                "sandbox_run_path".to_owned(),
                path(&deployment.sandbox_run_path),
            ),
        ]);
    }
    out.extend([
        ("Logger".to_owned(), text(&config.name)),
        (
            "output_limit".to_owned(),
            number(config.output_limit as f64),
        ),
        (
            "memory_limit".to_owned(),
            number(config.memory_limit as f64),
        ),
        (
            "instruction_limit".to_owned(),
            number(config.instruction_limit as f64),
        ),
        (
            "ticker_interval".to_owned(),
            number(config.ticker_interval as f64),
        ),
        (
            "preserve_data".to_owned(),
            CfgValue::Bool(config.preserve_data),
        ),
        ("log_level".to_owned(), number(LOG_LEVEL)),
    ]);
    match config.kind {
        PluginKind::Analysis => out.push((
            "thread".to_owned(),
            number(config.thread.unwrap_or(0) as f64),
        )),
        PluginKind::Output => {
            let size = match config.get("async_buffer_size") {
                Some(CfgValue::Number(n)) => *n,
                _ => 0.0,
            };
            out.push(("async_buffer_size".to_owned(), number(size)));
        }
        PluginKind::Input => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: PluginKind, cfg: &str) -> PluginConfig {
        PluginConfig::parse(kind, Path::new("hs_run/x/p.cfg"), cfg.as_bytes()).unwrap()
    }

    fn get<'a>(values: &'a [(String, CfgValue)], key: &str) -> Option<&'a CfgValue> {
        values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    #[test]
    fn every_plugin_gets_hindsights_values_and_io_plugins_the_paths() {
        let deployment = Deployment {
            output_path: "data".into(),
            output_size: 1 << 20,
            sandbox_load_path: "hs_load".into(),
            sandbox_run_path: "hs_run".into(),
        };
        let dirs = vec![PathBuf::from("lua_modules"), PathBuf::from("/usr/lib/x")];
        let output = config(
            PluginKind::Output,
            "filename = 'p.lua'\nmessage_matcher = 'TRUE'\nLogger = 'mine'\nasync_buffer_size = 20\n",
        );
        let values = defaults(&output, "host1", 77, &dirs, 65536, &deployment);
        assert_eq!(get(&values, "Logger"), Some(&text("output.p")));
        assert_eq!(get(&values, "Hostname"), Some(&text("host1")));
        assert_eq!(get(&values, "Pid"), Some(&CfgValue::Number(77.0)));
        assert_eq!(
            get(&values, "path"),
            Some(&text("lua_modules/?.lua;/usr/lib/x/?.lua"))
        );
        assert_eq!(get(&values, "output_path"), Some(&text("data")));
        assert_eq!(get(&values, "sandbox_run_path"), Some(&text("hs_run")));
        assert_eq!(
            get(&values, "max_message_size"),
            Some(&CfgValue::Number(65536.0))
        );
        assert_eq!(
            get(&values, "instruction_limit"),
            Some(&CfgValue::Number(1_000_000.0))
        );
        assert_eq!(
            get(&values, "async_buffer_size"),
            Some(&CfgValue::Number(20.0))
        );
        let analysis = config(
            PluginKind::Analysis,
            "filename = 'p.lua'\nmessage_matcher = 'TRUE'\nthread = 3\n",
        );
        let values = defaults(&analysis, "h", 1, &[], 65536, &deployment);
        assert_eq!(get(&values, "thread"), Some(&CfgValue::Number(3.0)));
        assert_eq!(
            get(&values, "output_path"),
            None,
            "analysis plugins get no paths"
        );
        assert_eq!(get(&values, "preserve_data"), Some(&CfgValue::Bool(false)));
    }
}

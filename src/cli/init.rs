//! `blink init DIR`: writes a deployment Blink can run from — the shipped `cfg/blink.toml`, the
//! example pipeline in `hs_run/` (with its detections' test cases), `lua_modules/blink/rule.lua`
//! that the detections are written with, the lookup table one of them reads (`lookups/`), and
//! an empty `hs_load/` — for users who installed the binary and have no repository to start
//! from. The files are the repository's own,
//! compiled in.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

/// Every file of a new deployment, by path inside it.
const FILES: &[(&str, &str)] = &[
    ("cfg/blink.toml", include_str!("../../cfg/blink.toml")),
    (
        "hs_run/input/auth_events.cfg",
        include_str!("../../hs_run/input/auth_events.cfg"),
    ),
    (
        "hs_run/input/auth_events.lua",
        include_str!("../../hs_run/input/auth_events.lua"),
    ),
    (
        "hs_run/input/kafka.cfg",
        include_str!("../../hs_run/input/kafka.cfg"),
    ),
    (
        "hs_run/input/kafka.lua",
        include_str!("../../hs_run/input/kafka.lua"),
    ),
    (
        "hs_run/analysis/ssh_brute_force.cfg",
        include_str!("../../hs_run/analysis/ssh_brute_force.cfg"),
    ),
    (
        "hs_run/analysis/ssh_brute_force.lua",
        include_str!("../../hs_run/analysis/ssh_brute_force.lua"),
    ),
    (
        "hs_run/analysis/ssh_brute_force.test.toml",
        include_str!("../../hs_run/analysis/ssh_brute_force.test.toml"),
    ),
    (
        "hs_run/analysis/new_country_login.cfg",
        include_str!("../../hs_run/analysis/new_country_login.cfg"),
    ),
    (
        "hs_run/analysis/new_country_login.lua",
        include_str!("../../hs_run/analysis/new_country_login.lua"),
    ),
    (
        "hs_run/analysis/new_country_login.test.toml",
        include_str!("../../hs_run/analysis/new_country_login.test.toml"),
    ),
    (
        "hs_run/analysis/privileged_off_hours.cfg",
        include_str!("../../hs_run/analysis/privileged_off_hours.cfg"),
    ),
    (
        "hs_run/analysis/privileged_off_hours.lua",
        include_str!("../../hs_run/analysis/privileged_off_hours.lua"),
    ),
    (
        "hs_run/analysis/privileged_off_hours.test.toml",
        include_str!("../../hs_run/analysis/privileged_off_hours.test.toml"),
    ),
    (
        "lookups/ip_countries.csv",
        include_str!("../../lookups/ip_countries.csv"),
    ),
    (
        "lua_modules/blink/rule.lua",
        include_str!("../../lua_modules/blink/rule.lua"),
    ),
    (
        "hs_run/output/alerts_file.cfg",
        include_str!("../../hs_run/output/alerts_file.cfg"),
    ),
    (
        "hs_run/output/alerts_file.lua",
        include_str!("../../hs_run/output/alerts_file.lua"),
    ),
    (
        "hs_run/output/alert_webhook.lua",
        include_str!("../../hs_run/output/alert_webhook.lua"),
    ),
    (
        "hs_run/output/slack_alerts.cfg.off",
        include_str!("../../hs_run/output/slack_alerts.cfg.off"),
    ),
    (
        "hs_run/output/webhook_alerts.cfg.off",
        include_str!("../../hs_run/output/webhook_alerts.cfg.off"),
    ),
    (
        "hs_run/output/detections_kafka.cfg",
        include_str!("../../hs_run/output/detections_kafka.cfg"),
    ),
    (
        "hs_run/output/detections_kafka.lua",
        include_str!("../../hs_run/output/detections_kafka.lua"),
    ),
];

/// Directories a deployment has even when empty.
const DIRS: &[&str] = &[
    "hs_load/input",
    "hs_load/analysis",
    "hs_load/output",
    "hs_run/input",
    "hs_run/analysis",
    "hs_run/output",
    "lua_modules",
];

pub fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    write_deployment(dir)?;
    println!(
        "A Blink deployment with the example pipeline is in {0}.\n\
         Start it:     cd {0} && blink run\n\
         Watch it:     tail -f data/alerts.log\n\
         Add plugins:  cp my.lua my.cfg hs_load/analysis/\n\
         Settings:     cfg/blink.toml",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the deployment's files into `dir`, refusing one that holds a deployment already.
pub fn write_deployment(dir: &Path) -> anyhow::Result<()> {
    // Never over a deployment: a user's cfg or plugins are not ours to replace.
    for existing in ["cfg/blink.toml", "hs_run", "hs_load"] {
        let path = dir.join(existing);
        if path.exists() {
            bail!(
                "{} already exists: {} looks like a deployment already; nothing was written",
                path.display(),
                dir.display()
            );
        }
    }
    for sub in DIRS {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

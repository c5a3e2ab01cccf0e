//! Plugins as the pipeline knows them: kind, name, and their Lua-syntax `.cfg` files.

mod config;
mod defaults;
mod stats;

pub use config::{
    CfgValue, InitialPosition, PluginConfig, PluginConfigError, ReadQueue, lua_error_text,
};
pub use defaults::{KindDefaults, PluginDefaults};
pub use stats::PluginStats;

/// The three kinds of plugin, named as Hindsight's directories are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    Input,
    Analysis,
    Output,
}

impl PluginKind {
    pub const ALL: [PluginKind; 3] = [PluginKind::Input, PluginKind::Analysis, PluginKind::Output];

    /// `input`, `analysis` or `output`: the directory name and the plugin name prefix.
    pub fn dir(self) -> &'static str {
        match self {
            PluginKind::Input => "input",
            PluginKind::Analysis => "analysis",
            PluginKind::Output => "output",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir())
    }
}

//! The limits' shared pieces: what the instruction hook, the pattern functions and the
//! sandbox's own buffers need to agree on, in a leaf both can import.

use mlua::{HookTriggers, Lua};

/// Hindsight's message for a plugin that ran out of instructions.
pub const INSTRUCTION_LIMIT: &str = "instruction_limit exceeded";

/// Hook firings per instruction budget.
pub const TICKS: u32 = 16;

/// The memory limit's absolute value (the state's own size plus `memory_limit`), for what the
/// sandbox holds for a plugin outside Lua's allocator.
pub struct MemoryCeiling(pub usize);

impl MemoryCeiling {
    /// Whether `held` more bytes outside Lua's allocator would take the plugin past its limit.
    pub fn exceeded_by(lua: &Lua, held: usize) -> bool {
        lua.app_data_ref::<MemoryCeiling>()
            .is_some_and(|c| lua.used_memory() + held > c.0)
    }
}

/// Once the limit is exceeded, every further instruction of the thread it fires in fails, so
/// no `pcall` (or `coroutine.resume`) loop can swallow the error and go on; a thread whose hook
/// still has the long interval switches to this at its next firing.
pub fn refuse_every_instruction(lua: &Lua) -> mlua::Error {
    let _ = lua.set_global_hook(HookTriggers::new().every_nth_instruction(1), |lua, _| {
        Err(refuse_every_instruction(lua))
    });
    mlua::Error::runtime(INSTRUCTION_LIMIT)
}

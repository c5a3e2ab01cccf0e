//! `sax`: Symbolic Aggregate approXimation of time series, with the API of the `sax` module
//! lua_sandbox_extensions builds from trink/symtseries — how Hindsight's monitors compare the
//! shape of today's traffic with history (`moz_telemetry_doctype_monitor`).
//!
//! `sax.window.new(n, w, c)` keeps the last `n` values (`1 < n ≤ 4096`) as a word of `w`
//! symbols (`w` divides `n`, `1 < w ≤ 2048`) from an alphabet of `c` (2–16):
//! `window:add(number | array)` (of an array only the last `n` count), `window:get_word()`,
//! `window:clear()`. `sax.word.new(values, w, c)` or `sax.word.new("FC", c)` make a word.
//! `sax.mindist(a, b)` → the lower-bounding distance between two words or windows and its parts
//! above and below, or nil when their shapes differ. `tostring` spells a word ('A' lowest, `#`
//! for a frame with no values); `==` compares symbols and alphabet, a window by its word.
//! `sax.version()` is the original's version this follows.
//!
//! The symbol tables are in [`gaussian`], the transform in [`word`]. A window's values are held
//! outside Lua and counted in the plugin's module memory; renewing its word walks every value,
//! which is paid from the instruction limit.

mod gaussian;
mod word;

use std::rc::Rc;

use mlua::{AnyUserData, Lua, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value};

use gaussian::{MAX_CARDINALITY, MIN_CARDINALITY};
use word::{Window, Word, mindist};

/// The version of trink/symtseries' Lua module whose API this is.
const VERSION: &str = "0.5.0";

/// A word or a window: one userdata type, so that `==` works between the two (Lua 5.1 calls
/// `__eq` only when both operands share the metamethod).
struct Sax {
    shape: Shape,
    env: Rc<Env>,
    _memory: super::Reservation,
}

/// What every word and window of a plugin shares: its module memory and instruction budget.
struct Env {
    external: Rc<super::ExternalMemory>,
    steps: Rc<dyn super::StepAccount>,
}

enum Shape {
    Word(Word),
    Window(Window),
}

impl Sax {
    fn word(&self) -> &Word {
        match &self.shape {
            Shape::Word(word) => word,
            Shape::Window(window) => &window.word,
        }
    }

    fn window(&mut self, method: &str) -> mlua::Result<&mut Window> {
        match &mut self.shape {
            Shape::Window(window) => Ok(window),
            Shape::Word(_) => Err(error(format!(
                "bad argument #1 to '{method}' (mozsvc.sax.window expected, got mozsvc.sax.word)"
            ))),
        }
    }
}

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// Argument `index` of `function` as an integer (a number or numeric string, truncated, as
/// `luaL_checkint` takes it).
fn int_arg(lua: &Lua, args: &MultiValue, index: usize, function: &str) -> mlua::Result<i64> {
    super::lua_args::check_integer(lua, args.get(index - 1), index, function)
}

/// The checks the original makes of a shape, reported against argument `index`.
fn check_shape(n: i64, w: i64, c: i64, index: usize) -> mlua::Result<()> {
    let problem = if !(n > 1 && n <= 4096) {
        "n is out of range"
    } else if !(w > 1 && w <= 2048) {
        "w is out of range"
    } else if n % w != 0 {
        "n must be evenly divisible by w"
    } else if !(c as usize >= MIN_CARDINALITY && c as usize <= MAX_CARDINALITY && c > 0) {
        "cardinality is out of range"
    } else {
        return Ok(());
    };
    Err(error(format!("bad argument #{index} to 'new' ({problem})")))
}

/// Every element of the array `table`, which must be numbers.
fn numbers(table: &Table, index: usize, function: &str) -> mlua::Result<Vec<f64>> {
    let len = table.raw_len();
    let mut out = Vec::with_capacity(len);
    for i in 1..=len {
        match table.raw_get::<Value>(i)? {
            Value::Integer(v) => out.push(v as f64),
            Value::Number(v) => out.push(v),
            _ => {
                return Err(error(format!(
                    "bad argument #{index} to '{function}' (expected array of numbers as input)"
                )));
            }
        }
    }
    Ok(out)
}

/// A word or window, its memory reserved.
fn new_sax(env: &Rc<Env>, shape: Shape) -> mlua::Result<Sax> {
    let (bytes, what) = match &shape {
        Shape::Word(word) => (word.symbols.len(), "a sax word"),
        Shape::Window(window) => (window.len() * 8 + window.word.symbols.len(), "a sax window"),
    };
    Ok(Sax {
        _memory: env.external.reserve(bytes, what)?,
        env: env.clone(),
        shape,
    })
}

/// The word of argument `index` (a word or a window).
fn word_arg(args: &MultiValue, index: usize, function: &str) -> mlua::Result<Word> {
    match args.get(index - 1) {
        Some(Value::UserData(ud)) if ud.is::<Sax>() => Ok(ud.borrow::<Sax>()?.word().clone()),
        other => Err(error(format!(
            "bad argument #{index} to '{function}' (sax.window or sax.word expected, got {})",
            other.map_or("no value", |v| v.type_name())
        ))),
    }
}

impl UserData for Sax {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_function("add", |lua, (ud, value): (AnyUserData, Value)| {
            let values = match value {
                Value::Integer(v) => vec![v as f64],
                Value::Number(v) => vec![v],
                Value::Table(t) => numbers(&t, 1, "add")?,
                other => {
                    return Err(error(format!(
                        "bad argument #2 to 'add' (number or array-like table expected, got {})",
                        other.type_name()
                    )));
                }
            };
            let mut sax = ud.borrow_mut::<Sax>()?;
            let steps = sax.env.steps.clone();
            let window = sax.window("add")?;
            if values.is_empty() {
                return Ok(());
            }
            // Renewing the word walks the whole window: paid like the plugin's instructions.
            let cost = (window.len() + values.len()) as u64;
            if steps.left() < cost {
                return Err(steps.exhausted(lua));
            }
            steps.spend(cost);
            window.add(&values);
            Ok(())
        });
        methods.add_method_mut("get_word", |_, sax, ()| {
            let word = sax.window("get_word")?.word.clone();
            new_sax(&sax.env, Shape::Word(word))
        });
        methods.add_method_mut("clear", |_, sax, ()| {
            sax.window("clear")?.clear();
            Ok(())
        });
        methods.add_meta_method(MetaMethod::ToString, |_, sax, ()| Ok(sax.word().text()));
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (AnyUserData, AnyUserData)| {
            Ok(a.borrow::<Sax>()?.word().same(b.borrow::<Sax>()?.word()))
        });
    }
}

/// `preserve_data`: a word's text and shape, or a window's shape and values.
pub(super) fn save(object: &AnyUserData) -> Option<serde_json::Value> {
    let sax = object.borrow::<Sax>().ok()?;
    Some(match &sax.shape {
        Shape::Word(word) => serde_json::json!({
            "word": word.text(), "n": word.n, "c": word.c,
        }),
        Shape::Window(window) => serde_json::json!({
            "window": super::preserved::numbers(window.values()),
            "w": window.word.symbols.len(), "c": window.word.c,
        }),
    })
}

/// `preserve_data`: a word or window from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<AnyUserData> {
    use super::preserved::{bad, field, read_numbers};
    const MODULE: &str = "sax";
    let sax_env = Rc::new(Env {
        external: env.external.clone(),
        steps: env.steps.clone(),
    });
    let c: i64 = field(state, MODULE, "c")?;
    let shape = if state.get("window").is_some() {
        let values = read_numbers(state, MODULE, "window")?;
        let w: i64 = field(state, MODULE, "w")?;
        check_shape(values.len() as i64, w, c, 1).map_err(|_| bad(MODULE, "window"))?;
        let mut window = Window::new(values.len(), w as usize, c as usize);
        window.add(&values);
        Shape::Window(window)
    } else {
        let text: String = field(state, MODULE, "word")?;
        let mut word = usize::try_from(c)
            .ok()
            .filter(|c| (MIN_CARDINALITY..=MAX_CARDINALITY).contains(c))
            .and_then(|c| Word::from_text(text.as_bytes(), c))
            .ok_or_else(|| bad(MODULE, "word"))?;
        word.n = field(state, MODULE, "n")?;
        Shape::Word(word)
    };
    lua.create_userdata(new_sax(&sax_env, shape)?)
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let sax_env = Rc::new(Env {
        external: env.external.clone(),
        steps: env.steps.clone(),
    });
    let module = lua.create_table()?;
    let plain = |f| super::plain_error::wrap(lua, f);

    let window = lua.create_table()?;
    let window_env = sax_env.clone();
    window.raw_set(
        "new",
        plain(lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 3 {
                return Err(error("bad argument #0 to 'new' (incorrect number of args)"));
            }
            let n = int_arg(lua, &args, 1, "new")?;
            let w = int_arg(lua, &args, 2, "new")?;
            let c = int_arg(lua, &args, 3, "new")?;
            check_shape(n, w, c, 1)?;
            let window = Window::new(n as usize, w as usize, c as usize);
            new_sax(&window_env, Shape::Window(window))
        })?)?,
    )?;
    module.raw_set("window", window)?;

    let word = lua.create_table()?;
    let word_env = sax_env;
    word.raw_set(
        "new",
        plain(lua.create_function(move |lua, args: MultiValue| {
            let shape = match args.len() {
                2 => {
                    let text = match args.front() {
                        Some(Value::String(s)) => s.as_bytes().to_vec(),
                        other => {
                            return Err(error(format!(
                                "bad argument #1 to 'new' (string expected, got {})",
                                other.map_or("no value", |v| v.type_name())
                            )));
                        }
                    };
                    if text.len() <= 1 {
                        return Err(error(
                            "bad argument #1 to 'new' (length of SAX string should be > 1)",
                        ));
                    }
                    let c = int_arg(lua, &args, 2, "new")?;
                    let word = usize::try_from(c)
                        .ok()
                        .filter(|c| (MIN_CARDINALITY..=MAX_CARDINALITY).contains(c))
                        .and_then(|c| Word::from_text(&text, c))
                        .ok_or_else(|| {
                            error(
                                "bad argument #1 to 'new' (illegal symbols for given \
                                 cardinality or bad cardinality itself)",
                            )
                        })?;
                    Shape::Word(word)
                }
                3 => {
                    let w = int_arg(lua, &args, 2, "new")?;
                    let c = int_arg(lua, &args, 3, "new")?;
                    let Some(Value::Table(table)) = args.front() else {
                        return Err(error(
                            "bad argument #1 to 'new' (array-like table expected)",
                        ));
                    };
                    let n = table.raw_len() as i64;
                    check_shape(n, w, c, 2)?;
                    let values = numbers(table, 1, "new")?;
                    Shape::Word(Word::from_series(&values, w as usize, c as usize))
                }
                _ => {
                    return Err(error(
                        "bad argument #0 to 'new' (incorrect number of arguments)",
                    ));
                }
            };
            new_sax(&word_env, shape)
        })?)?,
    )?;
    module.raw_set("word", word)?;

    module.raw_set(
        "mindist",
        plain(lua.create_function(|_, args: MultiValue| {
            if args.len() != 2 {
                return Err(error(
                    "bad argument #0 to 'mindist' (incorrect number of args)",
                ));
            }
            let a = word_arg(&args, 1, "mindist")?;
            let b = word_arg(&args, 2, "mindist")?;
            Ok(match mindist(&a, &b) {
                Some((d, above, below)) => MultiValue::from_vec(vec![
                    Value::Number(d),
                    Value::Number(above),
                    Value::Number(below),
                ]),
                None => MultiValue::from_vec(vec![Value::Nil]),
            })
        })?)?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok(VERSION))?)?;
    Ok(Some(module))
}

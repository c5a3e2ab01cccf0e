//! `streaming_algorithms.time_series`: a sliding window of integer counts, one per time row,
//! with the streaming_algorithms module's API: `time_series.new(rows, ns_per_row)`;
//! `ts:add(ns, n)`, `ts:set(ns, n)`, `ts:get(ns)` (nil outside the window: a time the series
//! has not been moved to yet),
//! `ts:get_range(ns|nil, length)`, `ts:stats(ns|nil, length [, "sum"|"min"|"max"|"avg"|"sd"|
//! "usd" [, include_zero]])` → `value, rows_used`, `ts:current_time()`,
//! `ts:get_configuration()`, `ts:merge(other [, "add"|"set"])`, `tostring(ts)` and
//! `ts:fromstring(s)`.
//!
//! As a circular buffer: a time past the newest row moves the window there, clearing the rows
//! passed (to 0, which the statistics treat as "no data" unless `include_zero`); a time older
//! than the window is ignored. `nil` as the start means the oldest row. The rows are counted in
//! the plugin's module memory. (`matrix_profile` is not provided.)

use mlua::{AnyUserData, Lua, MetaMethod, Table, UserData, UserDataMethods};

struct TimeSeries {
    ns_per_row: i64,
    /// The newest row's start time (ns) and index.
    current_time: i64,
    current_row: usize,
    values: Vec<i64>,
    _memory: super::Reservation,
}

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

impl TimeSeries {
    fn rows(&self) -> usize {
        self.values.len()
    }

    fn start_time(&self) -> i64 {
        self.current_time - self.ns_per_row * (self.rows() as i64 - 1)
    }

    /// The row of `ns`; with `advance`, a later time moves the window there first.
    fn row_of(&mut self, ns: f64, advance: bool) -> Option<usize> {
        if !ns.is_finite() || ns < 0.0 {
            return None;
        }
        let requested = (ns as i64) / self.ns_per_row;
        let current = self.current_time / self.ns_per_row;
        let delta = requested - current;
        let rows = self.rows() as i64;
        if delta > 0 && advance {
            let mut row = self.current_row;
            for _ in 0..delta.min(rows) {
                row = (row + 1) % self.rows();
                self.values[row] = 0;
            }
            self.current_time = requested * self.ns_per_row;
            self.current_row = (requested % rows) as usize;
        } else if delta > 0 || -delta >= rows {
            return None;
        }
        Some((requested % rows) as usize)
    }

    /// The rows of `length` from `start` (nil: the oldest), oldest first.
    fn range(&mut self, start: Option<f64>, length: f64) -> mlua::Result<Option<Vec<i64>>> {
        if !(length >= 1.0 && length <= self.rows() as f64 && length.fract() == 0.0) {
            return Err(error(
                "bad argument #2 (length must be 1 to the number of rows)",
            ));
        }
        let start = start.unwrap_or(self.start_time() as f64);
        let last = start + (length - 1.0) * self.ns_per_row as f64;
        let (Some(mut row), Some(_)) = (self.row_of(start, false), self.row_of(last, false)) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(length as usize);
        for _ in 0..length as usize {
            out.push(self.values[row]);
            row = (row + 1) % self.rows();
        }
        Ok(Some(out))
    }

    /// Takes the time, row and values `to_text` wrote (`fromstring`).
    fn load_text(&mut self, text: &str) -> mlua::Result<()> {
        let mut words = text.split_ascii_whitespace().map(|w| w.parse::<i64>());
        let (Some(Ok(time)), Some(Ok(row))) = (words.next(), words.next()) else {
            return Err(error("fromstring() invalid time or row"));
        };
        let values: Vec<i64> = words
            .take(self.rows() + 1)
            .collect::<Result<_, _>>()
            .map_err(|_| error("fromstring() invalid value"))?;
        if values.len() != self.rows() || row < 0 || row as usize >= self.rows() {
            return Err(error(format!(
                "fromstring() expected {} values",
                self.rows()
            )));
        }
        self.current_time = time;
        self.current_row = row as usize;
        self.values = values;
        Ok(())
    }

    fn to_text(&self) -> String {
        let mut out = format!("{} {}", self.current_time, self.current_row);
        for v in &self.values {
            out.push(' ');
            out.push_str(&v.to_string());
        }
        out
    }
}

fn stats(values: &[i64], kind: &str, include_zero: bool) -> mlua::Result<(f64, f64)> {
    let used: Vec<f64> = values
        .iter()
        .filter(|&&v| include_zero || v != 0)
        .map(|&v| v as f64)
        .collect();
    let n = used.len() as f64;
    let sum: f64 = used.iter().sum();
    let value = match kind {
        "sum" => sum,
        "min" => used.iter().copied().fold(f64::NAN, f64::min),
        "max" => used.iter().copied().fold(f64::NAN, f64::max),
        "avg" => sum / n,
        "sd" | "usd" => {
            let mean = sum / n;
            let squares: f64 = used.iter().map(|v| (v - mean).powi(2)).sum();
            let divisor = if kind == "sd" { n - 1.0 } else { n };
            (squares / divisor).sqrt()
        }
        other => {
            return Err(error(format!(
                "bad argument #3 to 'stats' (invalid option '{other}')"
            )));
        }
    };
    Ok((value, n))
}

impl UserData for TimeSeries {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, ts, (ns, n): (f64, f64)| {
            Ok(ts.row_of(ns, true).map(|r| {
                ts.values[r] = ts.values[r].saturating_add(n as i64);
                ts.values[r] as f64
            }))
        });
        methods.add_method_mut("set", |_, ts, (ns, n): (f64, f64)| {
            Ok(ts.row_of(ns, true).map(|r| {
                ts.values[r] = n as i64;
                ts.values[r] as f64
            }))
        });
        // nil only outside the window: a time no message has moved the series to yet.
        methods.add_method_mut("get", |_, ts, ns: f64| {
            Ok(ts.row_of(ns, false).map(|r| ts.values[r] as f64))
        });
        methods.add_method_mut(
            "get_range",
            |lua, ts, (start, length): (Option<f64>, f64)| match ts.range(start, length)? {
                Some(values) => {
                    let t = lua.create_table_with_capacity(values.len(), 0)?;
                    for (i, v) in values.into_iter().enumerate() {
                        t.raw_set(i + 1, v as f64)?;
                    }
                    Ok(Some(t))
                }
                None => Ok(None),
            },
        );
        methods.add_method_mut(
            "stats",
            |_, ts, (start, length, kind, zero): (Option<f64>, f64, Option<String>, Option<bool>)| {
                let Some(values) = ts.range(start, length)? else {
                    return Ok((None, None));
                };
                let (value, n) =
                    stats(&values, kind.as_deref().unwrap_or("sum"), zero.unwrap_or(false))?;
                Ok((Some(value), Some(n)))
            },
        );
        methods.add_method("current_time", |_, ts, ()| Ok(ts.current_time as f64));
        methods.add_method("get_configuration", |_, ts, ()| {
            Ok((ts.rows() as f64, ts.ns_per_row as f64))
        });
        methods.add_function(
            "merge",
            |_, (ud, other, op): (AnyUserData, AnyUserData, Option<String>)| {
                let set = match op.as_deref().unwrap_or("add") {
                    "add" => false,
                    "set" => true,
                    other => {
                        return Err(error(format!(
                            "bad argument #3 to 'merge' (invalid option '{other}')"
                        )));
                    }
                };
                let rows: Vec<(f64, i64)> = {
                    let o = other.borrow::<TimeSeries>()?;
                    let start = o.start_time();
                    (0..o.rows())
                        .map(|i| {
                            let row = (o.current_row + 1 + i) % o.rows();
                            ((start + i as i64 * o.ns_per_row) as f64, o.values[row])
                        })
                        .collect()
                };
                let mut ts = ud.borrow_mut::<TimeSeries>()?;
                if rows.first().is_some_and(|_| {
                    other
                        .borrow::<TimeSeries>()
                        .is_ok_and(|o| o.ns_per_row > ts.ns_per_row)
                }) {
                    return Err(error(
                        "merge: the merged series' rows must not be longer than this one's",
                    ));
                }
                for (ns, v) in rows {
                    if v == 0 {
                        continue;
                    }
                    if let Some(r) = ts.row_of(ns, true) {
                        ts.values[r] = if set {
                            v
                        } else {
                            ts.values[r].saturating_add(v)
                        };
                    }
                }
                Ok(())
            },
        );
        methods.add_method_mut("fromstring", |_, ts, text: String| ts.load_text(&text));
        methods.add_meta_method(MetaMethod::ToString, |_, ts, ()| Ok(ts.to_text()));
        methods.add_method("matrix_profile", |_, _, ()| -> mlua::Result<()> {
            Err(error("matrix_profile is not provided by Blink"))
        });
    }
}

/// A series of `rows` rows of `ns_per_row`, its rows reserved in module memory.
fn new_series(
    external: &std::rc::Rc<super::ExternalMemory>,
    rows: f64,
    ns_per_row: f64,
) -> mlua::Result<TimeSeries> {
    if !(rows > 1.0 && rows.fract() == 0.0 && rows < (1u64 << 32) as f64) {
        return Err(error("bad argument #1 to 'new' (rows must be > 1)"));
    }
    if !(1.0..9.2e18).contains(&ns_per_row) {
        return Err(error("bad argument #2 to 'new' (ns_per_row must be > 0)"));
    }
    let rows = rows as usize;
    let memory = external.reserve(rows * 8, "a time series")?;
    let ns_per_row = ns_per_row as i64;
    Ok(TimeSeries {
        ns_per_row,
        current_time: ns_per_row * (rows as i64 - 1),
        current_row: rows - 1,
        values: vec![0; rows],
        _memory: memory,
    })
}

/// `preserve_data`: the series' shape and `tostring` text.
pub(super) fn save(object: &AnyUserData) -> Option<serde_json::Value> {
    let ts = object.borrow::<TimeSeries>().ok()?;
    Some(serde_json::json!({
        "rows": ts.rows(), "ns_per_row": ts.ns_per_row, "text": ts.to_text(),
    }))
}

/// `preserve_data`: a series from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<AnyUserData> {
    use super::preserved::field;
    const MODULE: &str = "streaming_algorithms.time_series";
    let rows: f64 = field(state, MODULE, "rows")?;
    let ns_per_row: f64 = field(state, MODULE, "ns_per_row")?;
    let mut ts = new_series(&env.external, rows, ns_per_row)?;
    ts.load_text(&field::<String>(state, MODULE, "text")?)?;
    lua.create_userdata(ts)
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(move |_, (rows, ns_per_row): (f64, f64)| {
            new_series(&external, rows, ns_per_row)
        })?,
    )?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn a_window_of_counts() {
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "sats");
        lua.load(
            r#"
            local ts = sats.new(1440, 60e9)
            assert(ts:add(1e9, 1) == 1 and ts:add(1e9, 7) == 8 and ts:get(1e9) == 8)
            assert(ts:set(1e9, 99) == 99)
            assert(ts:current_time() == 86340000000000)
            local rows, ns = ts:get_configuration()
            assert(rows == 1440 and ns == 60e9)

            local small = sats.new(4, 1e9)
            for s = 0, 3 do small:set(s * 1e9, s * 2) end
            local a = small:get_range(nil, 2)
            assert(#a == 2 and a[1] == 0 and a[2] == 2)
            local sum, cnt = small:stats(nil, 4)
            assert(sum == 12 and cnt == 3, "zero rows are no data by default")
            sum, cnt = small:stats(nil, 4, "sum", true)
            assert(cnt == 4)
            assert(small:stats(nil, 4, "max") == 6 and small:stats(nil, 4, "min") == 2)
            assert(small:stats(nil, 4, "avg") == 4)
            assert(math.abs(small:stats(nil, 4, "sd") - 2) < 1e-9)
            assert(small:add(10e9, 1) == 1 and small:get(3e9) == nil, "the window moved")
            assert(small:get(9e9) == 0, "a cleared row")
            assert(small:get(11e9) == nil, "not reached yet")
            local copy = sats.new(4, 1e9)
            copy:fromstring(tostring(small))
            assert(copy:get(10e9) == 1)
            local sum2 = sats.new(4, 1e9)
            sum2:merge(small)
            assert(sum2:get(10e9) == 1)
            assert(not pcall(small.stats, small, nil, 5))
            assert(not pcall(sats.new, 1, 1))
        "#,
        )
        .exec()
        .unwrap();
    }
}

//! `circular_buffer`: an in-memory sliding window of time series, with the API and the text
//! output of lua_sandbox_extensions' module (the `cbuf` and `cbufd` payloads dashboards and
//! `cbuf2tsv` read).
//!
//! `circular_buffer.new(rows, columns, seconds_per_row)`; `cb:add(ns, col, v)`,
//! `cb:set(ns, col, v)` (min/max columns keep the smaller/larger), `cb:get(ns, col)`,
//! `cb:get_delta`, `cb:get_range(col [, start_ns [, end_ns]])`, `cb:get_range_delta`,
//! `cb:set_header(col, name [, unit [, "sum"|"min"|"max"|"none"]])`, `cb:get_header(col)`,
//! `cb:get_configuration()`, `cb:current_time()`, `cb:annotate(ns, col, "info"|"alert", text
//! [, delta])`, `cb:format("cbuf"|"cbufd")`, `cb:reset_delta()`, `cb:fromstring(s)`. A time
//! past the newest row moves the window forward (clearing the rows it passes); a time older
//! than the window is ignored (nil). Values start as NaN ("no data").
//!
//! Passed to `add_to_payload`, `inject_payload` or `output` (or `tostring`) it writes its JSON
//! header line and then, as `cbuf`, every row oldest first, or, as `cbufd`, the rows changed
//! since the last delta output with their times (the deltas are then reset). Numbers are
//! written as lua_sandbox writes them. The values live outside Lua's allocator, so they are
//! counted in the plugin's module memory (bounded by its `memory_limit`) before they are made.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mlua::{AnyUserData, Lua, MetaMethod, Table, UserData, UserDataMethods};

use crate::sandbox::lua_values::format_output_number;

const NAME_SIZE: usize = 15;
const UNIT_SIZE: usize = 7;
const AGGREGATIONS: [&str; 4] = ["sum", "min", "max", "none"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregation {
    Sum,
    Min,
    Max,
    None,
}

#[derive(Clone)]
struct Header {
    name: String,
    unit: String,
    aggregation: Aggregation,
}

struct Annotation {
    alert: bool,
    text: String,
    /// Still to be written by the next `cbufd` output.
    delta: bool,
}

struct CircularBuffer {
    rows: usize,
    columns: usize,
    seconds_per_row: i64,
    /// The newest row's start time (seconds) and index.
    current_time: i64,
    current_row: usize,
    /// Row by row, each column's value then its delta.
    values: Vec<f64>,
    headers: Vec<Header>,
    delta_output: bool,
    /// By row time (seconds), then column (1-based).
    annotations: BTreeMap<i64, BTreeMap<usize, Annotation>>,
    _memory: super::Reservation,
}

fn error(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

impl CircularBuffer {
    fn start_time(&self) -> i64 {
        self.current_time - self.seconds_per_row * (self.rows as i64 - 1)
    }

    fn index(&self, row: usize, column: usize) -> usize {
        row * self.columns * 2 + column * 2
    }

    /// Clears the `n` rows after the newest (all of them at most).
    fn clear_rows(&mut self, n: usize) {
        let width = self.columns * 2;
        let mut row = self.current_row;
        for _ in 0..n.min(self.rows) {
            row = (row + 1) % self.rows;
            self.values[row * width..(row + 1) * width].fill(f64::NAN);
        }
    }

    /// The row of time `ns`; with `advance`, a later time moves the window there first.
    fn row_of(&mut self, ns: f64, advance: bool) -> Option<usize> {
        let t = (ns / 1e9) as i64;
        let t = t - t % self.seconds_per_row;
        let current = self.current_time / self.seconds_per_row;
        let requested = t / self.seconds_per_row;
        if requested < 0 {
            return None;
        }
        let delta = requested - current;
        let row = (requested % self.rows as i64) as usize;
        if delta > 0 && advance {
            self.clear_rows(delta.min(self.rows as i64) as usize);
            self.current_time = t;
            self.current_row = row;
        } else if requested > current || delta.unsigned_abs() >= self.rows as u64 {
            return None;
        }
        Some(row)
    }

    fn column(&self, column: f64) -> mlua::Result<usize> {
        if column.fract() != 0.0 || column < 1.0 || column > self.columns as f64 {
            return Err(error("bad argument (column out of range)"));
        }
        Ok(column as usize - 1)
    }

    fn add(&mut self, ns: f64, column: f64, value: f64) -> mlua::Result<Option<f64>> {
        let row = self.row_of(ns, true);
        let column = self.column(column)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let i = self.index(row, column);
        let old = self.values[i];
        if old.is_nan() {
            self.values[i] = value;
        } else {
            if value.is_nan() {
                return Err(error("cannot uninitialize a value"));
            }
            self.values[i] += value;
            if self.values[i].is_nan() {
                return Err(error("add produced a NAN"));
            }
        }
        let new = self.values[i];
        if old != new {
            match self.headers[column].aggregation {
                Aggregation::Sum => {
                    let d = self.values[i + 1];
                    self.values[i + 1] = if d.is_nan() { value } else { d + value };
                }
                Aggregation::Min | Aggregation::Max => self.values[i + 1] = new,
                Aggregation::None => {}
            }
        }
        Ok(Some(new))
    }

    fn set(&mut self, ns: f64, column: f64, value: f64) -> mlua::Result<Option<f64>> {
        let row = self.row_of(ns, true);
        let column = self.column(column)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let i = self.index(row, column);
        let old = self.values[i];
        if value.is_nan() && !old.is_nan() {
            return Err(error("cannot uninitialize a value"));
        }
        match self.headers[column].aggregation {
            Aggregation::Sum => {
                self.values[i] = value;
                let change = if old.is_finite() { value - old } else { value };
                if !(old.is_finite() && change == 0.0) {
                    let d = self.values[i + 1];
                    self.values[i + 1] = if d.is_nan() { change } else { d + change };
                }
            }
            Aggregation::Min => {
                if old.is_nan() || value < old {
                    self.values[i] = value;
                    self.values[i + 1] = value;
                }
            }
            Aggregation::Max => {
                if old.is_nan() || value > old {
                    self.values[i] = value;
                    self.values[i + 1] = value;
                }
            }
            Aggregation::None => self.values[i] = value,
        }
        Ok(Some(self.values[i]))
    }

    /// Values (or deltas) of `column` from `start` to `end`, oldest first.
    fn range(
        &mut self,
        column: f64,
        start: Option<f64>,
        end: Option<f64>,
        delta: bool,
    ) -> mlua::Result<Option<Vec<f64>>> {
        let column = self.column(column)?;
        let start = start.unwrap_or(self.start_time() as f64 * 1e9);
        let end = end.unwrap_or(self.current_time as f64 * 1e9);
        if end < start {
            return Err(error("bad argument #4 (end must be >= start)"));
        }
        let (Some(mut row), Some(last)) = (self.row_of(start, false), self.row_of(end, false))
        else {
            return Ok(None);
        };
        let mut out = Vec::new();
        loop {
            out.push(self.values[self.index(row, column) + delta as usize]);
            if row == last || out.len() >= self.rows {
                break;
            }
            row = (row + 1) % self.rows;
        }
        Ok(Some(out))
    }

    fn is_dirty(&self, row: usize) -> bool {
        (0..self.columns).any(|c| !self.values[self.index(row, c) + 1].is_nan())
    }

    /// The text `output(cb)` writes (resetting what a delta output reports).
    fn output(&mut self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"time\":{},\"rows\":{},\"columns\":{},\"seconds_per_row\":{},\"column_info\":[",
            self.start_time(),
            self.rows,
            self.columns,
            self.seconds_per_row
        );
        for (c, h) in self.headers.iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            let agg = AGGREGATIONS[h.aggregation as usize];
            let _ = write!(
                out,
                "{{\"name\":\"{}\",\"unit\":\"{}\",\"aggregation\":\"{agg}\"}}",
                h.name, h.unit
            );
        }
        out.push_str("],\"annotations\":[");
        let start = self.start_time();
        self.annotations.retain(|&t, _| t >= start);
        let mut wrote_annotation = false;
        for (&t, columns) in self.annotations.iter_mut() {
            for (&col, a) in columns.iter_mut() {
                if self.delta_output {
                    if !a.delta {
                        continue;
                    }
                    a.delta = false;
                }
                if wrote_annotation {
                    out.push(',');
                }
                wrote_annotation = true;
                let short = if a.alert { 'a' } else { 'i' };
                let _ = write!(
                    out,
                    "{{\"x\":{},\"col\":{col},\"shortText\":\"{short}\",\"text\":\"{}\"}}",
                    t * 1000,
                    a.text
                );
            }
        }
        out.push_str("]}\n");
        let mut row = (self.current_row + 1) % self.rows;
        if self.delta_output {
            let mut t = start;
            let mut wrote_row = false;
            for _ in 0..self.rows {
                if self.is_dirty(row) {
                    wrote_row = true;
                    let _ = write!(out, "{t}");
                    for c in 0..self.columns {
                        let i = self.index(row, c) + 1;
                        out.push('\t');
                        out.push_str(&format_output_number(self.values[i]));
                        self.values[i] = f64::NAN;
                    }
                    out.push('\n');
                }
                t += self.seconds_per_row;
                row = (row + 1) % self.rows;
            }
            if !wrote_row && !wrote_annotation {
                // Nothing changed: a delta output is empty.
                out.clear();
            }
            return out;
        }
        for _ in 0..self.rows {
            for c in 0..self.columns {
                if c > 0 {
                    out.push('\t');
                }
                out.push_str(&format_output_number(self.values[self.index(row, c)]));
            }
            out.push('\n');
            row = (row + 1) % self.rows;
        }
        out
    }

    /// `fromstring`: the current time and row, every value, then delta rows (time, deltas).
    fn restore_text(&mut self, text: &str) -> mlua::Result<()> {
        let mut words = text.split_ascii_whitespace();
        let number = |w: Option<&str>| w.and_then(|w| w.parse::<f64>().ok());
        let (Some(time), Some(row)) = (number(words.next()), number(words.next())) else {
            return Err(error("fromstring() invalid time or row"));
        };
        if row < 0.0 || row as usize >= self.rows {
            return Err(error("fromstring() invalid row"));
        }
        self.current_time = time as i64;
        self.current_row = row as usize;
        let total = self.rows * self.columns;
        let mut read = 0;
        let mut values = Vec::with_capacity(total);
        for w in words.by_ref() {
            values.push(
                w.parse::<f64>()
                    .map_err(|_| error("fromstring() invalid value"))?,
            );
            read += 1;
            if read == total {
                break;
            }
        }
        if read < total {
            return Err(error(format!(
                "fromstring() too few values: {read}, expected {total}"
            )));
        }
        for (n, v) in values.into_iter().enumerate() {
            self.values[n * 2] = v;
        }
        let rest: Vec<f64> = words
            .map(|w| {
                w.parse::<f64>()
                    .map_err(|_| error("fromstring() invalid delta"))
            })
            .collect::<Result<_, _>>()?;
        if !rest.len().is_multiple_of(self.columns + 1) {
            return Err(error("fromstring() invalid delta"));
        }
        for chunk in rest.chunks(self.columns + 1) {
            if let Some(row) = self.row_of(chunk[0] * 1e9, false) {
                for (c, d) in chunk[1..].iter().enumerate() {
                    let i = self.index(row, c) + 1;
                    self.values[i] = *d;
                }
            }
        }
        Ok(())
    }
}

/// A header name: 15 characters, anything not alphanumeric made `_`.
fn clean(text: &str, size: usize, keep: impl Fn(char) -> bool) -> String {
    text.chars()
        .take(size)
        .map(|c| if keep(c) { c } else { '_' })
        .collect()
}

/// An annotation's text as it is written into JSON (lua_sandbox's escaping).
fn escape_annotation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '"' | '/' => {
                out.push('\\');
                out.push(c);
            }
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push(' '),
        }
    }
    out
}

impl UserData for CircularBuffer {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, cb, (ns, col, v): (f64, f64, f64)| {
            cb.add(ns, col, v)
        });
        methods.add_method_mut("set", |_, cb, (ns, col, v): (f64, f64, f64)| {
            cb.set(ns, col, v)
        });
        for (name, delta) in [("get", false), ("get_delta", true)] {
            methods.add_method_mut(name, move |_, cb, (ns, col): (f64, f64)| {
                let row = cb.row_of(ns, false);
                let col = cb.column(col)?;
                Ok(row.map(|r| cb.values[cb.index(r, col) + delta as usize]))
            });
        }
        for (name, delta) in [("get_range", false), ("get_range_delta", true)] {
            methods.add_method_mut(
                name,
                move |_, cb, (col, start, end): (f64, Option<f64>, Option<f64>)| {
                    cb.range(col, start, end, delta)
                },
            );
        }
        methods.add_method("get_configuration", |_, cb, ()| {
            Ok((cb.rows as f64, cb.columns as f64, cb.seconds_per_row as f64))
        });
        methods.add_method("current_time", |_, cb, ()| Ok(cb.current_time as f64 * 1e9));
        methods.add_method_mut(
            "set_header",
            |_, cb, (col, name, unit, agg): (f64, String, Option<String>, Option<String>)| {
                let c = cb.column(col)?;
                let aggregation = match agg.as_deref().unwrap_or("sum") {
                    "sum" => Aggregation::Sum,
                    "min" => Aggregation::Min,
                    "max" => Aggregation::Max,
                    "none" => Aggregation::None,
                    other => {
                        return Err(error(format!(
                            "bad argument #5 to 'set_header' (invalid option '{other}')"
                        )));
                    }
                };
                cb.headers[c] = Header {
                    name: clean(&name, NAME_SIZE, |ch| ch.is_ascii_alphanumeric()),
                    unit: clean(unit.as_deref().unwrap_or("count"), UNIT_SIZE, |ch| {
                        ch.is_ascii_alphanumeric() || ch == '/' || ch == '*'
                    }),
                    aggregation,
                };
                Ok(c as f64 + 1.0)
            },
        );
        methods.add_method("get_header", |_, cb, col: f64| {
            let h = &cb.headers[cb.column(col)?];
            Ok((
                h.name.clone(),
                h.unit.clone(),
                AGGREGATIONS[h.aggregation as usize],
            ))
        });
        methods.add_method_mut("reset_delta", |_, cb, ()| {
            for i in (1..cb.values.len()).step_by(2) {
                cb.values[i] = f64::NAN;
            }
            Ok(())
        });
        methods.add_method_mut(
            "annotate",
            |_, cb, (ns, col, kind, text, delta): (f64, f64, String, String, Option<bool>)| {
                let row = cb.row_of(ns, false);
                let col = cb.column(col)? + 1;
                let alert = match kind.as_str() {
                    "info" => false,
                    "alert" => true,
                    other => {
                        return Err(error(format!(
                            "bad argument #4 to 'annotate' (invalid option '{other}')"
                        )));
                    }
                };
                if row.is_none() {
                    return Ok(());
                }
                let t = (ns / 1e9) as i64;
                let t = t - t % cb.seconds_per_row;
                cb.annotations.entry(t).or_default().insert(
                    col,
                    Annotation {
                        alert,
                        text: escape_annotation(&text),
                        delta: delta.unwrap_or(true),
                    },
                );
                Ok(())
            },
        );
        methods.add_function("format", |_, (ud, format): (AnyUserData, String)| {
            let delta = match format.as_str() {
                "cbuf" => false,
                "cbufd" => true,
                other => {
                    return Err(error(format!(
                        "bad argument #2 to 'format' (invalid option '{other}')"
                    )));
                }
            };
            ud.borrow_mut::<CircularBuffer>()?.delta_output = delta;
            Ok(ud)
        });
        methods.add_method_mut("fromstring", |_, cb, text: String| cb.restore_text(&text));
        methods.add_meta_method_mut(MetaMethod::ToString, |_, cb, ()| Ok(cb.output()));
    }
}

/// A buffer of `rows` × `columns` at `spr` seconds a row, its cells reserved in module memory.
fn new_buffer(
    external: &std::rc::Rc<super::ExternalMemory>,
    rows: f64,
    columns: f64,
    spr: f64,
) -> mlua::Result<CircularBuffer> {
    if !(rows > 1.0 && rows.fract() == 0.0) {
        return Err(error("bad argument #1 to 'new' (rows must be > 1)"));
    }
    if !(columns > 0.0 && columns <= 256.0 && columns.fract() == 0.0) {
        return Err(error(
            "bad argument #2 to 'new' (columns must be > 0 and <= 256)",
        ));
    }
    if !(spr > 0.0 && spr.fract() == 0.0 && spr < i32::MAX as f64) {
        return Err(error(
            "bad argument #3 to 'new' (seconds_per_row is out of range)",
        ));
    }
    if rows * columns * 16.0 > (1u64 << 40) as f64 {
        return Err(error("bad argument #1 to 'new' (too many rows)"));
    }
    let (rows, columns, spr) = (rows as usize, columns as usize, spr as i64);
    let memory = external.reserve(rows * columns * 16, "a circular buffer")?;
    let headers = (1..=columns)
        .map(|c| Header {
            name: format!("Column_{c}"),
            unit: "count".into(),
            aggregation: Aggregation::Sum,
        })
        .collect();
    Ok(CircularBuffer {
        rows,
        columns,
        seconds_per_row: spr,
        current_time: spr * (rows as i64 - 1),
        current_row: rows - 1,
        values: vec![f64::NAN; rows * columns * 2],
        headers,
        delta_output: false,
        annotations: BTreeMap::new(),
        _memory: memory,
    })
}

/// `preserve_data`: the buffer's shape, headers, position, cells and annotations.
pub(super) fn save(object: &mlua::AnyUserData) -> Option<serde_json::Value> {
    let cb = object.borrow::<CircularBuffer>().ok()?;
    let headers: Vec<(&str, &str, usize)> = cb
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.unit.as_str(), h.aggregation as usize))
        .collect();
    let annotations: Vec<(i64, usize, bool, &str, bool)> = cb
        .annotations
        .iter()
        .flat_map(|(&time, columns)| {
            columns
                .iter()
                .map(move |(&col, a)| (time, col, a.alert, a.text.as_str(), a.delta))
        })
        .collect();
    Some(serde_json::json!({
        "rows": cb.rows, "columns": cb.columns, "seconds_per_row": cb.seconds_per_row,
        "current_time": cb.current_time, "current_row": cb.current_row,
        "values": super::preserved::numbers(&cb.values), "headers": headers,
        "delta_output": cb.delta_output, "annotations": annotations,
    }))
}

/// `preserve_data`: a buffer from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<mlua::AnyUserData> {
    use super::preserved::{bad, field, read_numbers};
    const MODULE: &str = "circular_buffer";
    let rows: f64 = field(state, MODULE, "rows")?;
    let columns: f64 = field(state, MODULE, "columns")?;
    let spr: f64 = field(state, MODULE, "seconds_per_row")?;
    let mut cb = new_buffer(&env.external, rows, columns, spr)?;
    let values = read_numbers(state, MODULE, "values")?;
    if values.len() != cb.values.len() {
        return Err(bad(MODULE, "values"));
    }
    cb.values = values;
    cb.current_time = field(state, MODULE, "current_time")?;
    cb.current_row = field(state, MODULE, "current_row")?;
    if cb.current_row >= cb.rows {
        return Err(bad(MODULE, "current_row"));
    }
    let headers: Vec<(String, String, usize)> = field(state, MODULE, "headers")?;
    if headers.len() != cb.columns {
        return Err(bad(MODULE, "headers"));
    }
    for (header, (name, unit, aggregation)) in cb.headers.iter_mut().zip(headers) {
        header.name = name;
        header.unit = unit;
        header.aggregation = match aggregation {
            0 => Aggregation::Sum,
            1 => Aggregation::Min,
            2 => Aggregation::Max,
            3 => Aggregation::None,
            _ => return Err(bad(MODULE, "headers")),
        };
    }
    cb.delta_output = field(state, MODULE, "delta_output")?;
    let annotations: Vec<(i64, usize, bool, String, bool)> = field(state, MODULE, "annotations")?;
    for (time, col, alert, text, delta) in annotations {
        if col >= cb.columns {
            return Err(bad(MODULE, "annotations"));
        }
        cb.annotations
            .entry(time)
            .or_default()
            .insert(col, Annotation { alert, text, delta });
    }
    lua.create_userdata(cb)
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(move |_, (rows, columns, spr): (f64, f64, f64)| {
            new_buffer(&external, rows, columns, spr)
        })?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok("1.1.0"))?)?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests;

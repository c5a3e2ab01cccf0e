//! `streaming_algorithms.p2`: quantiles without storing observations — Jain and Chlamtac's
//! piecewise-parabolic (P²) algorithm, with the streaming_algorithms module's API:
//! `p2.quantile(p)` → `q:add(x)`, `q:estimate(i)` (marker `i`'s height, 0–4; marker 2 is the
//! p-quantile; NaN before five observations), `q:count(i)` (marker `i`'s position),
//! `q:clear()`.
//!
//! Five markers track the minimum, p/2, p, (1+p)/2 and the maximum; the first five
//! observations are kept sorted, after which each observation moves the markers' positions and
//! adjusts the middle three heights by the parabolic formula (linear when that would leave the
//! neighbours' order). Constant size, so nothing to bound.

use mlua::{Lua, Table, UserData, UserDataMethods};

#[derive(Clone)]
struct Quantile {
    p: f64,
    /// Marker heights, positions (from 0), desired positions and their increments.
    q: [f64; 5],
    n: [f64; 5],
    desired: [f64; 5],
    step: [f64; 5],
    count: usize,
}

impl Quantile {
    fn new(p: f64) -> Self {
        Quantile {
            p,
            q: [0.0; 5],
            n: [0.0, 1.0, 2.0, 3.0, 4.0],
            desired: [0.0, 2.0 * p, 4.0 * p, 2.0 + 2.0 * p, 4.0],
            step: [0.0, p / 2.0, p, (1.0 + p) / 2.0, 1.0],
            count: 0,
        }
    }

    fn add(&mut self, x: f64) {
        if self.count < 5 {
            self.q[self.count] = x;
            self.count += 1;
            if self.count == 5 {
                self.q.sort_by(f64::total_cmp);
            }
            return;
        }
        self.count += 1;
        // The cell x falls in; the extremes follow x.
        let k = if x < self.q[0] {
            self.q[0] = x;
            0
        } else if x >= self.q[4] {
            self.q[4] = x;
            3
        } else {
            (1..5).find(|&i| x < self.q[i]).map_or(3, |i| i - 1)
        };
        for i in k + 1..5 {
            self.n[i] += 1.0;
        }
        for i in 0..5 {
            self.desired[i] += self.step[i];
        }
        for i in 1..4 {
            let d = self.desired[i] - self.n[i];
            if (d >= 1.0 && self.n[i + 1] - self.n[i] > 1.0)
                || (d <= -1.0 && self.n[i - 1] - self.n[i] < -1.0)
            {
                let d = d.signum();
                let parabolic = self.parabolic(i, d);
                self.q[i] = if self.q[i - 1] < parabolic && parabolic < self.q[i + 1] {
                    parabolic
                } else {
                    self.linear(i, d)
                };
                self.n[i] += d;
            }
        }
    }

    fn parabolic(&self, i: usize, d: f64) -> f64 {
        let (q, n) = (&self.q, &self.n);
        q[i] + d / (n[i + 1] - n[i - 1])
            * ((n[i] - n[i - 1] + d) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
                + (n[i + 1] - n[i] - d) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]))
    }

    fn linear(&self, i: usize, d: f64) -> f64 {
        let j = if d > 0.0 { i + 1 } else { i - 1 };
        self.q[i] + d * (self.q[j] - self.q[i]) / (self.n[j] - self.n[i])
    }

    fn marker(&self, i: f64) -> mlua::Result<usize> {
        if !(0.0..=4.0).contains(&i) || i.fract() != 0.0 {
            return Err(mlua::Error::runtime("bad argument #1 (marker must be 0-4)"));
        }
        Ok(i as usize)
    }
}

impl UserData for Quantile {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, q, x: f64| {
            if !x.is_finite() {
                return Err(mlua::Error::runtime(
                    "bad argument #1 (must be a finite number)",
                ));
            }
            q.add(x);
            Ok(())
        });
        methods.add_method("estimate", |_, q, i: f64| {
            let i = q.marker(i)?;
            if q.count < 5 {
                // Fewer than five observations: no estimate yet (NaN, which plugins test for
                // with `x ~= x`).
                return Ok(f64::NAN);
            }
            Ok(q.q[i])
        });
        methods.add_method("count", |_, q, i: f64| {
            let i = q.marker(i)?;
            Ok(if q.count < 5 {
                (i.min(q.count.saturating_sub(1))) as f64
            } else {
                q.n[i]
            })
        });
        methods.add_method_mut("clear", |_, q, ()| {
            *q = Quantile::new(q.p);
            Ok(())
        });
    }
}

/// `preserve_data`: the quantile, its markers and the observations counted.
pub(super) fn save(object: &mlua::AnyUserData) -> Option<serde_json::Value> {
    let q = object.borrow::<Quantile>().ok()?;
    Some(serde_json::json!({
        "p": q.p,
        "q": super::preserved::numbers(&q.q),
        "n": q.n, "desired": q.desired, "count": q.count,
    }))
}

/// `preserve_data`: a quantile from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    _env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<mlua::AnyUserData> {
    use super::preserved::{bad, field, read_numbers};
    const MODULE: &str = "streaming_algorithms.p2";
    let p: f64 = field(state, MODULE, "p")?;
    if !(p > 0.0 && p < 1.0) {
        return Err(bad(MODULE, "p"));
    }
    let mut quantile = Quantile::new(p);
    quantile.q = read_numbers(state, MODULE, "q")?
        .try_into()
        .map_err(|_| bad(MODULE, "q"))?;
    quantile.n = field(state, MODULE, "n")?;
    quantile.desired = field(state, MODULE, "desired")?;
    quantile.count = field(state, MODULE, "count")?;
    lua.create_userdata(quantile)
}

/// Opens the module.
pub fn open(lua: &Lua, _env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let module = lua.create_table()?;
    module.raw_set(
        "quantile",
        lua.create_function(|_, p: f64| {
            if !(p > 0.0 && p < 1.0) {
                return Err(mlua::Error::runtime(
                    "bad argument #1 to 'quantile' (p must be between 0 and 1)",
                ));
            }
            Ok(Quantile::new(p))
        })?,
    )?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn the_median_of_a_stream() {
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "p2");
        lua.load(
            r#"
            local q = p2.quantile(0.5)
            for i = 1, 100 do q:add(i) end
            assert(math.abs(q:count(2) - 50) <= 1, q:count(2))
            assert(math.abs(q:estimate(2) - 50.5) < 2, q:estimate(2))
            assert(q:estimate(0) == 1 and q:estimate(4) == 100)
            -- The paper's example: 20 observations, p = 0.5.
            local data = { 0.02, 0.15, 0.74, 3.39, 0.83, 22.37, 10.15, 15.43, 38.62, 15.92,
                34.60, 10.28, 1.47, 0.40, 0.05, 11.39, 0.27, 0.42, 0.09, 11.37}
            local paper = p2.quantile(0.5)
            for _, v in ipairs(data) do paper:add(v) end
            assert(math.abs(paper:estimate(2) - 4.44) < 0.01, paper:estimate(2))
            local p99 = p2.quantile(0.99)
            for i = 1, 10000 do p99:add(i % 1000) end
            assert(math.abs(p99:estimate(2) - 990) < 15, p99:estimate(2))
            q:clear()
            local none = q:estimate(2)
            assert(none ~= none, "no estimate before five observations")
            assert(not pcall(p2.quantile, 1) and not pcall(q.estimate, q, 5))
        "#,
        )
        .exec()
        .unwrap();
    }
}

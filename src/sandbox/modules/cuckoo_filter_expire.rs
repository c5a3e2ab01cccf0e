//! `cuckoo_filter_expire`: a cuckoo filter whose entries expire, with the API of
//! lua_sandbox_extensions' module, as the moz_ingest decoders use it to drop duplicate
//! submissions: `cuckoo_filter_expire.new(items, interval_minutes)`; `cf:add(key, ns)` →
//! `true, 0` when added, `false, delta` when already there (delta: intervals between the two
//! sightings; a later sighting moves the entry to the later interval), or just `false` when
//! `ns` is older than the window; `cf:query(key)` → `true, interval` or `false`;
//! `cf:delete(key)`, `cf:count()`, `cf:clear()`, `cf:current_interval()` → `ns, index`.
//!
//! Time is kept in 256 intervals of `interval_minutes` (1–1440): when a message's time moves
//! into a new interval, the entries of the intervals that fall out of the window are dropped,
//! and when the table is 80% full the least recently used interval is. 32-bit fingerprints
//! (false positives near 2·10⁻⁹). Sizes are checked against the plugin's memory limit, and the
//! hash is Blink's own, as in `cuckoo_filter`.

use mlua::{Lua, Table, UserData, UserDataMethods, Value};

use super::cuckoo_filter::{BUCKET_SIZE, MAX_KICKS, Xorshift, alternate, bucket_count, hash_key};

const INTERVALS: usize = 256;

#[derive(Clone, Copy, Default)]
struct Entry {
    /// 0: empty.
    fingerprint: u32,
    interval: u8,
}

struct ExpiringFilter {
    entries: Vec<Entry>,
    buckets: usize,
    count: usize,
    /// Seconds per interval.
    interval_seconds: i64,
    /// The current interval's index and start time (seconds).
    interval: usize,
    start: i64,
    /// The interval the capacity rule drops next (None: the oldest).
    lru: Option<usize>,
    random: Xorshift,
    _memory: super::Reservation,
}

impl ExpiringFilter {
    fn clear(&mut self) {
        self.entries.fill(Entry::default());
        self.count = 0;
        self.interval = INTERVALS - 1;
        self.start = (INTERVALS as i64 - 1) * self.interval_seconds;
        self.lru = None;
    }

    /// An interval's age order: 0 the oldest in the window, 255 the current.
    fn age(&self, interval: usize) -> usize {
        (interval + INTERVALS - (self.interval + 1) % INTERVALS) % INTERVALS
    }

    fn locate(&self, key: &Value) -> mlua::Result<(u32, usize, usize)> {
        let h = hash_key(key)?;
        let fp = ((h >> 32) as u32).max(1);
        let i1 = (h as usize) & (self.buckets - 1);
        Ok((fp, i1, alternate(i1, fp, self.buckets)))
    }

    fn bucket(&mut self, i: usize) -> &mut [Entry] {
        &mut self.entries[i * BUCKET_SIZE..(i + 1) * BUCKET_SIZE]
    }

    /// Drops the entries of the intervals from `first` to `last` (wrapping); the oldest
    /// interval left, if any entry is.
    fn drop_intervals(&mut self, first: usize, last: usize) -> Option<usize> {
        let within = |i: usize| {
            if first <= last {
                (first..=last).contains(&i)
            } else {
                i >= first || i <= last
            }
        };
        let mut oldest: Option<usize> = None;
        for e in 0..self.entries.len() {
            let entry = self.entries[e];
            if entry.fingerprint == 0 {
                continue;
            }
            if within(entry.interval as usize) {
                self.entries[e] = Entry::default();
                self.count -= 1;
            } else if oldest.is_none_or(|o| self.age(entry.interval as usize) < self.age(o)) {
                oldest = Some(entry.interval as usize);
            }
        }
        oldest
    }

    /// An equal fingerprint in bucket `i`: moved to `interval` if that is later; the delta.
    fn seen(&mut self, i: usize, fp: u32, interval: usize) -> Option<usize> {
        let now = self.age(interval);
        let slot = self.bucket(i).iter().position(|e| e.fingerprint == fp)?;
        let stored = self.bucket(i)[slot].interval as usize;
        let before = self.age(stored);
        if now > before {
            self.bucket(i)[slot].interval = interval as u8;
            Some(now - before)
        } else {
            Some(before - now)
        }
    }

    fn put(&mut self, i: usize, entry: Entry) -> bool {
        match self.bucket(i).iter_mut().find(|e| e.fingerprint == 0) {
            Some(slot) => {
                *slot = entry;
                true
            }
            None => false,
        }
    }

    fn add(&mut self, key: &Value, ns: f64) -> mlua::Result<(bool, Option<usize>)> {
        let seconds = (ns / 1e9) as i64;
        let start = seconds - seconds.rem_euclid(self.interval_seconds);
        if start < self.start - self.interval_seconds * (INTERVALS as i64 - 1) {
            return Ok((false, None));
        }
        let interval = (start / self.interval_seconds).rem_euclid(INTERVALS as i64) as usize;
        if interval != self.interval && start > self.start {
            // Time moved on: the intervals it passes over are reused, their entries expire
            // (all of them after a jump past the whole window).
            let oldest = (self.interval + 1) % INTERVALS;
            let passed = (start - self.start) / self.interval_seconds;
            if passed >= INTERVALS as i64 {
                self.entries.fill(Entry::default());
                self.count = 0;
                self.lru = None;
            } else if self.count > 0 {
                self.lru = self.drop_intervals(oldest, interval);
            }
            self.interval = interval;
            self.start = start;
        }
        if self.count as f64 / self.entries.len() as f64 >= 0.8 {
            let lru = self.lru.unwrap_or((self.interval + 1) % INTERVALS);
            self.lru = self.drop_intervals(lru, lru);
        }
        let (mut fp, i1, i2) = self.locate(key)?;
        for i in [i1, i2] {
            if let Some(delta) = self.seen(i, fp, interval) {
                return Ok((false, Some(delta)));
            }
        }
        let mut entry = Entry {
            fingerprint: fp,
            interval: interval as u8,
        };
        if self.put(i1, entry) || self.put(i2, entry) {
            self.count += 1;
            return Ok((true, Some(0)));
        }
        let mut i = if self.random.next().is_multiple_of(2) {
            i1
        } else {
            i2
        };
        for _ in 0..MAX_KICKS {
            let slot = self.random.next() % BUCKET_SIZE;
            std::mem::swap(&mut self.bucket(i)[slot], &mut entry);
            fp = entry.fingerprint;
            i = alternate(i, fp, self.buckets);
            if let Some(delta) = self.seen(i, fp, entry.interval as usize) {
                return Ok((false, Some(delta)));
            }
            if self.put(i, entry) {
                self.count += 1;
                return Ok((true, Some(0)));
            }
        }
        Err(mlua::Error::runtime("the cuckoo filter is full"))
    }
}

impl UserData for ExpiringFilter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("add", |_, cf, (key, ns): (Value, f64)| {
            let (added, delta) = cf.add(&key, ns)?;
            let mut out = vec![Value::Boolean(added)];
            // Too old for the window: `false` alone, as the original.
            if let Some(d) = delta {
                out.push(Value::Number(d as f64));
            }
            Ok(mlua::MultiValue::from_vec(out))
        });
        methods.add_method_mut("query", |_, cf, key: Value| {
            let (fp, i1, i2) = cf.locate(&key)?;
            for i in [i1, i2] {
                if let Some(e) = cf.bucket(i).iter().find(|e| e.fingerprint == fp) {
                    let interval = Value::Number(e.interval as f64);
                    return Ok(mlua::MultiValue::from_vec(vec![
                        Value::Boolean(true),
                        interval,
                    ]));
                }
            }
            Ok(mlua::MultiValue::from_vec(vec![Value::Boolean(false)]))
        });
        methods.add_method_mut("delete", |_, cf, key: Value| {
            let (fp, i1, i2) = cf.locate(&key)?;
            for i in [i1, i2] {
                if let Some(e) = cf.bucket(i).iter_mut().find(|e| e.fingerprint == fp) {
                    *e = Entry::default();
                    cf.count -= 1;
                    return Ok(true);
                }
            }
            Ok(false)
        });
        methods.add_method("count", |_, cf, ()| Ok(cf.count as f64));
        methods.add_method_mut("clear", |_, cf, ()| {
            cf.clear();
            Ok(())
        });
        methods.add_method("current_interval", |_, cf, ()| {
            Ok((cf.start as f64 * 1e9, cf.interval as f64))
        });
    }
}

/// `preserve_data`: the filter's shape, position in time and entries.
pub(super) fn save(object: &mlua::AnyUserData) -> Option<serde_json::Value> {
    let cf = object.borrow::<ExpiringFilter>().ok()?;
    let fingerprints: Vec<u32> = cf.entries.iter().map(|e| e.fingerprint).collect();
    let intervals: Vec<u8> = cf.entries.iter().map(|e| e.interval).collect();
    Some(serde_json::json!({
        "buckets": cf.buckets, "count": cf.count, "interval_seconds": cf.interval_seconds,
        "interval": cf.interval, "start": cf.start, "lru": cf.lru,
        "fingerprints": fingerprints, "intervals": intervals,
    }))
}

/// `preserve_data`: a filter from what [`save`] wrote.
pub(super) fn restore(
    lua: &Lua,
    env: &super::ModuleEnv,
    state: &serde_json::Value,
) -> mlua::Result<mlua::AnyUserData> {
    use super::preserved::{bad, field};
    const MODULE: &str = "cuckoo_filter_expire";
    let buckets: usize = field(state, MODULE, "buckets")?;
    let count: usize = field(state, MODULE, "count")?;
    let interval_seconds: i64 = field(state, MODULE, "interval_seconds")?;
    let interval: usize = field(state, MODULE, "interval")?;
    let lru: Option<usize> = field(state, MODULE, "lru")?;
    let fingerprints: Vec<u32> = field(state, MODULE, "fingerprints")?;
    let intervals: Vec<u8> = field(state, MODULE, "intervals")?;
    let slots = buckets.saturating_mul(BUCKET_SIZE);
    if !buckets.is_power_of_two() || fingerprints.len() != slots || intervals.len() != slots {
        return Err(bad(MODULE, "fingerprints"));
    }
    if count > slots {
        return Err(bad(MODULE, "count"));
    }
    if !(60..=86_400).contains(&interval_seconds) {
        return Err(bad(MODULE, "interval_seconds"));
    }
    if interval >= INTERVALS || lru.is_some_and(|l| l >= INTERVALS) {
        return Err(bad(MODULE, "interval"));
    }
    let memory = env
        .external
        .reserve(slots * std::mem::size_of::<Entry>(), "a cuckoo filter")?;
    let entries = fingerprints
        .into_iter()
        .zip(intervals)
        .map(|(fingerprint, interval)| Entry {
            fingerprint,
            interval,
        })
        .collect();
    lua.create_userdata(ExpiringFilter {
        entries,
        buckets,
        count,
        interval_seconds,
        interval,
        start: field(state, MODULE, "start")?,
        lru,
        random: Xorshift(0x9e37_79b9_7f4a_7c15),
        _memory: memory,
    })
}

/// Opens the module.
pub fn open(lua: &Lua, env: &super::ModuleEnv) -> mlua::Result<Option<Table>> {
    let external = env.external.clone();
    let module = lua.create_table()?;
    module.raw_set(
        "new",
        lua.create_function(move |_, (items, minutes): (f64, Option<f64>)| {
            if items <= INTERVALS as f64 {
                return Err(mlua::Error::runtime(
                    "bad argument #1 to 'new' (items must be > 256)",
                ));
            }
            let minutes = minutes.unwrap_or(1.0);
            if !(1.0..=1440.0).contains(&minutes) {
                return Err(mlua::Error::runtime(
                    "bad argument #2 to 'new' (0 < interval size <= 1440)",
                ));
            }
            let (buckets, bytes) = bucket_count(items, std::mem::size_of::<Entry>())?;
            let memory = external.reserve(bytes, "a cuckoo filter")?;
            let mut cf = ExpiringFilter {
                entries: vec![Entry::default(); buckets * BUCKET_SIZE],
                buckets,
                count: 0,
                interval_seconds: 60 * minutes as i64,
                interval: 0,
                start: 0,
                lru: None,
                random: Xorshift(0x9e37_79b9_7f4a_7c15),
                _memory: memory,
            };
            cf.clear();
            Ok(cf)
        })?,
    )?;
    module.raw_set("version", lua.create_function(|_, ()| Ok("1.0.1"))?)?;
    Ok(Some(module))
}

#[cfg(test)]
mod tests {

    use crate::plugin::PluginKind;

    #[test]
    fn entries_expire_with_message_time() {
        let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Input, "cfe");
        lua.load(
            r##"
            local minute = 60e9
            local t0 = 1700000000e9
            local cf = cfe.new(1024, 1)
            local added, delta = cf:add("a", t0)
            assert(added == true and delta == 0)
            added, delta = cf:add("a", t0 + 3 * minute)
            assert(added == false and delta == 3, "seen three intervals later: " .. tostring(delta))
            local found, interval = cf:query("a")
            assert(found and interval == math.floor(t0 / minute + 3) % 256, tostring(found) .. " " .. tostring(interval) .. " " .. (math.floor(t0 / minute + 3) % 256))
            local ns, index = cf:current_interval()
            assert(ns == math.floor((t0 + 3 * minute) / minute) * minute and index == interval)
            -- Older than the window (256 intervals): not added, one result.
            assert(select("#", cf:add("old", t0 - 300 * minute)) == 1)
            -- 300 minutes later "a" (last seen at +3) has expired.
            assert(cf:add("b", t0 + 300 * minute))
            assert(not cf:query("a") and cf:count() == 1)
            assert(cf:delete("b") and cf:count() == 0)
            -- Full at 80%: the least recently used interval makes room.
            for i = 1, 2000 do cf:add("k" .. i, t0 + 301 * minute + i * 1e9) end
            assert(cf:count() < 1024)
            cf:clear()
            assert(cf:count() == 0)
            assert(not pcall(cfe.new, 100, 1) and not pcall(cfe.new, 1000, 0))
        "##,
        )
        .set_name("=t")
        .exec()
        .unwrap();
    }
}

//! The module's documented behaviour and output, checked in Lua.

use crate::plugin::PluginKind;

fn run(code: &str) {
    let lua =
        crate::sandbox::modules::lua_with(super::open, PluginKind::Analysis, "circular_buffer");
    if let Err(e) = lua.load(code).set_name("=t").exec() {
        panic!("{e}");
    }
}

#[test]
fn the_manuals_examples() {
    run(r##"
        local cb = circular_buffer.new(1440, 1, 60)
        local ERRORS = cb:set_header(1, "Errors")
        assert(ERRORS == 1)
        assert(cb:add(1e9, ERRORS, 1) == 1 and cb:add(1e9, ERRORS, 7) == 8 and cb:get(1e9, ERRORS) == 8)
        assert(cb:set(1e9, 1, 99) == 99 and cb:get(1e9, 1) == 99)
        local rows, columns, spr = cb:get_configuration()
        assert(rows == 1440 and columns == 1 and spr == 60)
        assert(cb:current_time() == 86340e9, "a new buffer ends at rows - 1 rows")
        local name, unit, agg = cb:get_header(1)
        assert(name == "Errors" and unit == "count" and agg == "sum")

        local stats = circular_buffer.new(5, 1, 1)
        for s = 1, 5 do stats:set(s * 1e9, 1, s) end
        local a = stats:get_range(1, 3e9, 4e9)
        assert(#a == 2 and a[1] == 3 and a[2] == 4)
        a = stats:get_range(1)
        assert(#a == 5 and a[1] == 1 and a[5] == 5, "the whole window, oldest first")
        assert(stats:get(0, 1) == nil, "older than the window")
        assert(stats:add(10e9, 1, 1) == 1, "a later time moves the window")
        assert(stats:get(5e9, 1) == nil and stats:current_time() == 10e9)
        local v = stats:get(9e9, 1)
        assert(v ~= v, "cleared rows hold NaN")
        assert(not pcall(stats.add, stats, 10e9, 2, 1), "column out of range")
        assert(not pcall(stats.add, stats, 10e9, 1, 0/0), "cannot uninitialize a value")
        assert(not pcall(circular_buffer.new, 1, 1, 1) and not pcall(circular_buffer.new, 2, 257, 1))
    "##);
}

#[test]
fn min_max_and_header_rules() {
    run(r##"
        local cb = circular_buffer.new(2, 3, 1)
        cb:set_header(1, "Lowest value!", "m/s", "min")
        cb:set_header(2, "a_very_long_column_name", "kilobytes")
        cb:set_header(3, "Peak", "KiB", "max")
        local name, unit, agg = cb:get_header(1)
        assert(name == "Lowest_value_" and unit == "m/s" and agg == "min")
        name, unit = cb:get_header(2)
        assert(name == "a_very_long_col" and unit == "kilobyt", name .. " " .. unit)
        cb:set(1e9, 1, 5); cb:set(1e9, 1, 3); cb:set(1e9, 1, 4)
        assert(cb:get(1e9, 1) == 3, "min keeps the smallest")
        cb:set(1e9, 3, 5); cb:set(1e9, 3, 9); cb:set(1e9, 3, 7)
        assert(cb:get(1e9, 3) == 9, "max keeps the largest")
        assert(not pcall(cb.set_header, cb, 1, "x", "u", "median"))
    "##);
}

#[test]
fn cbuf_and_cbufd_output() {
    run(r##"
        local cb = circular_buffer.new(3, 2, 60)
        cb:set_header(1, "HTTP_200")
        cb:set_header(2, "HTTP_500")
        cb:add(0, 1, 10002)
        cb:add(60e9, 1, 11323)
        cb:add(120e9, 1, 1/3)
        cb:add(120e9, 2, 2)
        local full = tostring(cb)
        assert(full == '{"time":0,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"HTTP_200","unit":"count","aggregation":"sum"},{"name":"HTTP_500","unit":"count","aggregation":"sum"}],"annotations":[]}\n'
            .. "10002\tnan\n11323\tnan\n0.33333333\t2\n", full)
        cb:annotate(60e9, 1, "alert", 'spike "here"')
        assert(cb:format("cbufd") == cb)
        local delta = tostring(cb)
        assert(delta == '{"time":0,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"HTTP_200","unit":"count","aggregation":"sum"},{"name":"HTTP_500","unit":"count","aggregation":"sum"}],"annotations":[{"x":60000,"col":1,"shortText":"a","text":"spike \\"here\\""}]}\n'
            .. "0\t10002\tnan\n60\t11323\tnan\n120\t0.33333333\t2\n", delta)
        assert(tostring(cb) == "", "nothing changed since: empty")
        cb:add(120e9, 2, 1)
        assert(tostring(cb):find("\n120\tnan\t1\n$"), "only what changed")
        -- Restored from its text form (what preserve_data keeps).
        local copy = circular_buffer.new(3, 2, 60)
        copy:fromstring("120 2 1 2 3 4 5 6 120 nan 7")
        assert(copy:get(120e9, 2) == 6 and copy:get_delta(120e9, 2) == 7 and copy:get(0, 1) == 1)
        assert(not pcall(copy.fromstring, copy, "120 2 1 2"), "too few values")
    "##);
}

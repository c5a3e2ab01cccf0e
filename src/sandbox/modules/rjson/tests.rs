//! rjson's documented behaviour, checked in Lua.

use mlua::Lua;

use crate::plugin::PluginKind;
use crate::sandbox::modules::ModuleEnv;

fn run(code: &str) {
    let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Input, "rjson");
    if let Err(e) = lua.load(code).set_name("=t").exec() {
        panic!("{e}");
    }
}

#[test]
fn documents_are_walked_by_handles() {
    run(r##"
        assert(rjson.version() == "1.1.4")
        local doc = rjson.parse('{"array":[1,"string",true,false,[3,4],{"foo":"bar"},null],"n":2.5}')
        assert(doc:type() == "object" and doc:size() == 2)
        local a = doc:find("array")
        assert(doc:type(a) == "array" and doc:size(a) == 7)
        assert(doc:value(doc:find(a, 1)) == "string", "a handle starts a search")
        assert(doc:value(doc:find("array", 0)) == 1 and doc:value(doc:find("n")) == 2.5)
        assert(doc:find("array", 5, "foo") and doc:value(doc:find("array", 5, "foo")) == "bar")
        assert(doc:find("array", "key") == nil and doc:find("array", 7) == nil and doc:find(true) == nil)
        assert(doc:find("array", 5) == doc:find("array", 5), "the same value, the same handle")
        assert(doc:value(doc:find("array", 6)) == nil and doc:type(doc:find("array", 6)) == "null")
        assert(doc:find(nil) == nil and doc:size(nil) == nil and doc:type(nil) == nil and doc:iter(nil) == nil)
        local ok, err = pcall(doc.value, doc, a)
        assert(not ok and err:find("not allowed on an object or array"), err)
        ok, err = pcall(doc.size, doc, doc:find("array", 2))
        assert(not ok)
        ok, err = pcall(doc.iter, doc, doc:find("array", 2))
        assert(err == "iter() not allowed on a primitive type", err)
        local other = rjson.parse('{"array":[]}')
        ok, err = pcall(doc.find, doc, other, "array")
        assert(err == "invalid value", err)
        ok, err = pcall(doc.value, doc, other:find("array"))
        assert(err == "invalid value", "another document's handle: " .. tostring(err))
        local seen = {}
        for i, v in doc:iter(a) do seen[#seen + 1] = i .. "=" .. doc:type(v) end
        assert(table.concat(seen, ",") == "0=number,1=string,2=boolean,3=boolean,4=array,5=object,6=null", table.concat(seen, ","))
        for k, v in doc:iter(doc:find("array", 5)) do assert(k == "foo" and doc:value(v) == "bar") end
    "##);
}

#[test]
fn removing_and_reparsing() {
    run(r##"
        local doc = rjson.parse('{"main":{"m1":1},"payload":{"values":[1,2,3]}}')
        local ok, err = pcall(doc.remove, doc)
        assert(err == "cannot remove the root", err)
        local values = doc:find("payload", "values")
        local it = doc:iter(values)
        local moved = doc:remove("payload", "values")
        assert(moved:type() == "array" and moved:value(moved:find(1)) == 2, "moved to a new document")
        ok, err = pcall(it)
        assert(err == "iterator has been invalidated", err)
        assert(doc:find("payload", "values") == nil and doc:size(doc:find("payload")) == 0)
        local shallow = doc:remove_shallow("main")
        assert(doc:size() == 1 and doc:value(doc:find(shallow, "m1")) == 1, "still readable")
        assert(doc:remove("nothing") == nil)
        local field = moved:make_field()
        assert(field.value == "[1,2,3]" and field.representation == "json")
        local before = doc:find("payload")
        assert(doc:parse('{"x":"y"}') == doc)
        ok, err = pcall(doc.type, doc, before)
        assert(err == "invalid value", "handles from before a parse are refused")
        ok, err = pcall(doc.parse, doc, "{")
        assert(not ok and err:find("^failed to parse offset:1"), err)
        assert(doc:type() == "null" and doc:find("x") == nil, "a failed parse leaves null")
        ok, err = pcall(rjson.parse, '{"a":')
        assert(not ok and err:find("failed to parse"), err)
        assert(rjson.parse('"f\240o"'), "without validation, bad UTF-8 is read")
        assert(not pcall(rjson.parse, '"f\240o"', true))
        local text = rjson.parse('{"b":[1,2.5,-3,1e300,"a/\\"b\\"\\n"],"a":null}')
        assert(text:make_field().value == '{"b":[1,2.5,-3,1e300,"a/\\"b\\"\\n"],"a":null}', text:make_field().value)
    "##);
}

#[test]
fn schemas_report_the_first_violation_as_rapidjson_does() {
    run(r##"
        local schema = rjson.parse_schema([[{
            "type": "object",
            "required": ["Timestamp"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "EnvVersion": {"type": "string", "pattern": "^\\d+(\\.[0-9]+){0,2}"},
                "Fields": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"anyOf": [{"$ref": "#/definitions/v"}, {"type": "array", "items": {"$ref": "#/definitions/v"}}]}
                },
                "eventId": {"type": "string", "enum": ["a", "b"]}
            },
            "additionalProperties": false,
            "definitions": {"v": {"type": ["string", "number", "boolean"]}}
        }]])
        local function check(json)
            local ok, err, report = rjson.parse(json):validate(schema)
            return ok, err, report
        end
        assert(check('{"Timestamp":0,"EnvVersion":"1.2","Fields":{"a":1,"b":["x",true]}}'))
        local ok, err, report = check('{"Timestamp":0,"EnvVersion":"unknown"}')
        assert(not ok and err == "SchemaURI: #/properties/EnvVersion Keyword: pattern DocumentURI: #/EnvVersion", err)
        assert(report == '{"pattern":{"actual":"unknown","instanceRef":"#/EnvVersion","schemaRef":"#/properties/EnvVersion"}}', report)
        ok, err, report = check('{"EnvVersion":"1"}')
        assert(err == "SchemaURI: # Keyword: required DocumentURI: #", err)
        assert(report == '{"required":{"missing":["Timestamp"],"instanceRef":"#","schemaRef":"#"}}', report)
        ok, err = check('{"Timestamp":1.5}')
        assert(err == "SchemaURI: #/properties/Timestamp Keyword: type DocumentURI: #/Timestamp", "1.5 is not an integer: " .. tostring(err))
        ok, err = check('{"Timestamp":-1}')
        assert(err:find("Keyword: minimum"), err)
        ok, err = check('{"Timestamp":0,"Fields":{}}')
        assert(err == "SchemaURI: #/properties/Fields Keyword: minProperties DocumentURI: #/Fields", err)
        ok, err = check('{"Timestamp":0,"Fields":{"a":{"x":1}}}')
        assert(err == "SchemaURI: #/properties/Fields/additionalProperties Keyword: anyOf DocumentURI: #/Fields/a", err)
        ok, err = check('{"Timestamp":0,"other":1}')
        assert(err == "SchemaURI: # Keyword: additionalProperties DocumentURI: #", err)
        ok, err = check('{"Timestamp":0,"eventId":"c"}')
        assert(err == "SchemaURI: #/properties/eventId Keyword: enum DocumentURI: #/eventId", err)
        -- A member's violation is met before the object's own keywords.
        ok, err = check('{"EnvVersion":"x"}')
        assert(err:find("Keyword: pattern"), err)
        local bad = pcall(rjson.parse_schema, '{"pattern":"("}')
        assert(not bad, "a pattern that does not compile is refused with the schema")
        local loop = rjson.parse_schema('{"$ref":"#"}')
        assert(not rjson.parse("1"):validate(loop), "a $ref loop ends")
    "##);
}

#[test]
fn parse_errors_in_rapidjsons_words_and_documents_from_messages() {
    run(r##"
        local ok, err = pcall(rjson.parse, "{")
        assert(err == "failed to parse offset:1 Missing a name for object member.", err)
        ok, err = pcall(rjson.parse, "")
        assert(err == "failed to parse offset:0 Invalid value.", err)
        ok, err = pcall(rjson.parse, "[1 2]")
        assert(err:find("Missing a comma or ']' after an array element."), err)
        -- parse_message reads a field of the current message (read_message), or of a reader.
        function read_message(field) if field == "Payload" then return '{"a":[1]}' end end
        local doc = rjson.parse_message("Payload")
        assert(doc:value(doc:find("a", 0)) == 1)
        local reused = rjson.parse("[]")
        assert(reused:parse_message("Payload") == reused and reused:type() == "object")
        assert(tostring(doc) == '{"a":[1]}', "a document writes itself as JSON")
        ok, err = pcall(rjson.parse_message, "Fields[missing]")
        assert(not ok and err:find("field not found"), err)
    "##);
}

#[test]
fn documents_are_counted_against_the_memory_limit() {
    let lua = Lua::new();
    let env = ModuleEnv {
        memory_limit: 1 << 20,
        external: crate::sandbox::modules::ExternalMemory::new(1 << 20),
        ..ModuleEnv::for_tests(PluginKind::Input)
    };
    let rjson = super::open(&lua, &env).unwrap().unwrap();
    lua.globals().set("rjson", rjson).unwrap();
    lua.load(
        r##"
        -- 200,000 one-digit numbers: 400 KB of text, far more as nodes.
        local big = "[" .. string.rep("1,", 199999) .. "1]"
        local ok, err = pcall(rjson.parse, big)
        assert(not ok and err:find("memory limit"), tostring(err))
        -- Small documents fit, and what a dropped one held is given back.
        for i = 1, 50 do
            local doc = rjson.parse('{"a":[1,2,3],"b":"' .. string.rep("x", 10000) .. '"}')
            assert(doc:size() == 2)
            doc = nil
            collectgarbage()
        end
    "##,
    )
    .exec()
    .unwrap();
}

#[test]
fn unique_items_and_deep_documents_stay_bounded() {
    run(r##"
        local unique = rjson.parse_schema('{"type":"array","uniqueItems":true}')
        local items = {}
        for i = 1, 50000 do items[i] = tostring(i) end
        assert(rjson.parse("[" .. table.concat(items, ",") .. "]"):validate(unique))
        local ok, err = rjson.parse("[1,2,3,2]"):validate(unique)
        assert(not ok and err:find("uniqueItems"), err)
        local deep = string.rep("[", 100000) .. string.rep("]", 100000)
        local parsed, perr = pcall(rjson.parse, deep)
        assert(not parsed and perr:find("failed to parse"), "nesting is refused, not overflowed")
    "##);
}

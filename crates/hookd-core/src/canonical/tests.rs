use super::*;

/// Expected texts are Node 20's `JSON.stringify(JSON.parse(input))`, except integers beyond 2^53,
/// which are kept as written.
#[test]
fn canonical_text_is_what_json_stringify_writes() {
    let cases = [
        (
            r#"{"a":1.0,"b":1e2,"c":1e21,"d":-0,"e":0.1,"f":1.5e-7,"g":0.000001,"h":1E-7,"i":123456789012345680000,"j":5e-324,"k":1.7976931348623157e308}"#,
            r#"{"a":1,"b":100,"c":1e+21,"d":0,"e":0.1,"f":1.5e-7,"g":0.000001,"h":1e-7,"i":123456789012345680000,"j":5e-324,"k":1.7976931348623157e+308}"#,
        ),
        (
            "{ \"name\" : \"Zo\\u00eb\", \"raw\":\"Zoë\", \"nested\" : [ [1, [2.50]], {\"x\": null} ] }",
            r#"{"name":"Zoë","raw":"Zoë","nested":[[1,[2.5]],{"x":null}]}"#,
        ),
        (
            r#"{"b":1,"2":2,"a":3,"10":4,"1":5,"01":6,"-1":7,"4294967294":8,"4294967295":9,"1.5":10}"#,
            r#"{"1":5,"2":2,"10":4,"4294967294":8,"b":1,"a":3,"01":6,"-1":7,"4294967295":9,"1.5":10}"#,
        ),
        (
            r#"{"big":12345678901234567890,"neg":-9007199254740993,"safe":9007199254740992,"bigexp":9007199254740993.0}"#,
            r#"{"big":12345678901234567890,"neg":-9007199254740993,"safe":9007199254740992,"bigexp":9007199254740992}"#,
        ),
        (
            r#"{"esc":"\"\\\/\b\f\n\r\t\u0001\u001f\u007f\u2028\ud83d\ude00","emoji":"🎉"}"#,
            "{\"esc\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\u{2028}😀\",\"emoji\":\"🎉\"}",
        ),
        (
            r#"{"empty":{},"arr":[],"s":"","t":true,"f":false,"n":null}"#,
            r#"{"empty":{},"arr":[],"s":"","t":true,"f":false,"n":null}"#,
        ),
        (
            r#"{"x":[1e0,1E+2,-1.25e-3,100e-2,0.5e1]}"#,
            r#"{"x":[1,100,-0.00125,1,5]}"#,
        ),
        (
            r#"{"ints":[0,-0,1e1,20,1e300,1.2e16,1e16,1e15,123e-20]}"#,
            r#"{"ints":[0,0,10,20,1e+300,12000000000000000,10000000000000000,1000000000000000,1.23e-18]}"#,
        ),
        // What Python's `requests` writes for {"name": "Zoë", "amount": 1.0}.
        (
            r#"{"name": "Zo\u00eb", "amount": 1.0}"#,
            r#"{"name":"Zoë","amount":1}"#,
        ),
        (
            r#"{"nested":{"3":{"b":[],"0":1},"a":[{"2":true,"1":false}]}}"#,
            r#"{"nested":{"3":{"0":1,"b":[]},"a":[{"1":false,"2":true}]}}"#,
        ),
    ];
    for (input, expected) in cases {
        let canonical = canonicalize(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(canonical, expected, "{input}");
        // Canonical text is a fixed point.
        assert_eq!(canonicalize(&canonical).unwrap(), canonical);
    }
}

/// Expected texts are Python 3's `json.dumps(json.loads(canonical), sort_keys=True)`.
#[test]
fn python_sorted_is_what_json_dumps_writes() {
    let cases = [
        (
            r#"{"a":1,"b":100,"c":1e+21,"d":0,"e":0.1,"f":1.5e-7,"g":0.000001,"h":1e-7,"i":123456789012345680000,"j":5e-324,"k":1.7976931348623157e+308}"#,
            r#"{"a": 1, "b": 100, "c": 1e+21, "d": 0, "e": 0.1, "f": 1.5e-07, "g": 1e-06, "h": 1e-07, "i": 123456789012345680000, "j": 5e-324, "k": 1.7976931348623157e+308}"#,
        ),
        (
            r#"{"name":"Zoë","raw":"Zoë","nested":[[1,[2.5]],{"x":null}]}"#,
            r#"{"name": "Zo\u00eb", "nested": [[1, [2.5]], {"x": null}], "raw": "Zo\u00eb"}"#,
        ),
        (
            r#"{"1":5,"2":2,"10":4,"4294967294":8,"b":1,"a":3,"01":6,"-1":7,"4294967295":9,"1.5":10}"#,
            r#"{"-1": 7, "01": 6, "1": 5, "1.5": 10, "10": 4, "2": 2, "4294967294": 8, "4294967295": 9, "a": 3, "b": 1}"#,
        ),
        (
            r#"{"big":12345678901234567890,"neg":-9007199254740993,"safe":9007199254740992,"bigexp":9007199254740992}"#,
            r#"{"big": 12345678901234567890, "bigexp": 9007199254740992, "neg": -9007199254740993, "safe": 9007199254740992}"#,
        ),
        (
            "{\"esc\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\u{2028}😀\",\"emoji\":\"🎉\"}",
            r#"{"emoji": "\ud83c\udf89", "esc": "\"\\/\b\f\n\r\t\u0001\u001f\u007f\u2028\ud83d\ude00"}"#,
        ),
        (
            r#"{"ints":[0,0,10,20,1e+300,12000000000000000,10000000000000000,1000000000000000,1.23e-18]}"#,
            r#"{"ints": [0, 0, 10, 20, 1e+300, 12000000000000000, 10000000000000000, 1000000000000000, 1.23e-18]}"#,
        ),
        // Floats as written, not canonical: Python keeps them floats.
        (
            r#"{"a":1.0,"b":1e2,"c":-0}"#,
            r#"{"a": 1.0, "b": 100.0, "c": 0}"#,
        ),
        (
            r#"{"empty":{},"arr":[],"s":"","t":true,"f":false,"n":null}"#,
            r#"{"arr": [], "empty": {}, "f": false, "n": null, "s": "", "t": true}"#,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(python_sorted(input).unwrap(), expected, "{input}");
    }
}

/// Expected texts are Python 3's `repr(float)`.
#[test]
fn python_float_repr_matches_python() {
    let cases = [
        (1.0, "1.0"),
        (100.0, "100.0"),
        (1e16, "1e+16"),
        (1.2e16, "1.2e+16"),
        (1e15, "1000000000000000.0"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (123.456, "123.456"),
        (-1.5e-7, "-1.5e-07"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e100, "1e+100"),
        (-0.0, "-0.0"),
        (9_999_999_999_999_998.0, "9999999999999998.0"),
    ];
    for (value, expected) in cases {
        assert_eq!(python_float_repr(value), expected, "{value:e}");
    }
}

#[test]
fn refusals_name_the_path() {
    let cases = [
        (r#"{"a":1,"a":2}"#, ".a", JsonErrorKind::DuplicateKey),
        (
            r#"{"x":{"k":1,"y":[0,{"k":1,"k":1}]}}"#,
            ".x.y[1].k",
            JsonErrorKind::DuplicateKey,
        ),
        (r#"{"s":"\ud800"}"#, ".s", JsonErrorKind::LoneSurrogate),
        (r#"{"s":"\ud800x"}"#, ".s", JsonErrorKind::LoneSurrogate),
        (
            r#"{"s":"\ud800\u0041"}"#,
            ".s",
            JsonErrorKind::LoneSurrogate,
        ),
        (
            r#"{"list":["ok","\udc00"]}"#,
            ".list[1]",
            JsonErrorKind::LoneSurrogate,
        ),
        (
            r#"{"key with space":{"n":1e400}}"#,
            r#"["key with space"].n"#,
            JsonErrorKind::NumberOutOfRange,
        ),
        (r#"{"n":-1e309}"#, ".n", JsonErrorKind::NumberOutOfRange),
        (r#"{"a":01}"#, ".a", JsonErrorKind::Syntax("invalid number")),
        (r#"{"a":1.}"#, ".a", JsonErrorKind::Syntax("invalid number")),
        (
            r#"{"a":"x"} x"#,
            "",
            JsonErrorKind::Syntax("trailing characters"),
        ),
        (
            "{\"a\":\"\u{1}\"}",
            ".a",
            JsonErrorKind::Syntax("control character in a string"),
        ),
    ];
    for (input, path, kind) in cases {
        let error = canonicalize(input).unwrap_err();
        assert_eq!((error.path.as_str(), &error.kind), (path, &kind), "{input}");
    }
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(
        canonicalize(&deep).unwrap_err().kind,
        JsonErrorKind::TooDeep
    );
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert_eq!(canonicalize(&ok).unwrap(), ok);
    let error = canonicalize(r#"{"a":{"b":1,"b":2}}"#).unwrap_err();
    assert_eq!(error.to_string(), "has a duplicate key at .a.b");
}

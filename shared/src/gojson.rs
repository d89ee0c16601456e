//! JSON written the way Go's `encoding/json` writes it, for bytes that must match cosign's
//! exactly (the simple-signing payload, the `.sig` manifest and its config blob).
//!
//! Go escapes `<`, `>`, `&`, U+2028 and U+2029 as `\u....` (HTML escaping is on by default),
//! writes `\b \f \n \r \t` short, other control characters as `\u00xx` (lowercase hex), and sorts
//! the keys of a decoded `map[string]interface{}`.

use serde_json::Value;

/// Appends `s` as a JSON string, escaped as Go escapes it.
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let n = c as u32;
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[((n >> shift) & 0xf) as usize] as char);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends any JSON value as Go's `json.Marshal` of an `interface{}` would: object keys sorted.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, &map[k]);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn string(s: &str) -> String {
        let mut out = String::new();
        write_string(&mut out, s);
        out
    }

    #[test]
    fn strings_escape_as_go_does() {
        // Expected bytes as Go 1.22+ `json.Marshal` writes them.
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("<a&b>"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(string("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(
            string("\0\u{1}\u{1f}\u{7f}"),
            "\"\\u0000\\u0001\\u001f\u{7f}\""
        );
        assert_eq!(string("é→"), "\"é→\"");
    }

    #[test]
    fn maps_are_sorted_and_scalars_plain() {
        let mut out = String::new();
        write_value(
            &mut out,
            &json!({"z": [1, true, null], "a": {"y": "<", "b": 2.5}}),
        );
        assert_eq!(out, r#"{"a":{"b":2.5,"y":"\u003c"},"z":[1,true,null]}"#);
    }
}

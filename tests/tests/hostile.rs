//! Hostile and malformed input, one line per case: every tool must answer each with a clear
//! error record, never a panic, never a lost record, within bounded memory and time
//! (`sigtrail_tests::hostile::check`).

use sigtrail_tests::hostile::check;

const DIGEST: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

/// A digest-of record for `digest` (what payload-for reads).
fn resolved(digest: &str) -> String {
    format!(
        "{{\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":{}}}\n",
        serde_json::Value::from(digest)
    )
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"digest\":{}{}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Input the harness refuses before any tool logic runs: the same for every tool.
/// (An oversized line is followed by an upstream-failed record so no tool logic is needed.)
#[test]
fn every_tool_survives_hostile_lines() {
    let empty = tempfile::tempdir().unwrap();
    let trail_dir = empty.path().to_str().unwrap();
    let tools: [(&str, &[&str]); 2] = [
        ("payload-for", &[]),
        ("trail-for", &["--cloudtrail", trail_dir]),
    ];
    for (tool, args) in tools {
        let check = |input: &[u8], expect: &str| check(tool, args, input, expect);
        let failed = "{\"digest\":\"x\",\"error\":{\"tool\":\"t\",\"kind\":\"upstream\",\"message\":\"m\"}}\n";
        let big = format!("{{\"image\":\"{}\"}}\n", "a".repeat(20 << 20));
        check(big.as_bytes(), "bad_record");
        // The line after an oversized one is still read as its own record.
        check(format!("{big}{failed}").as_bytes(), "bad_record,upstream");
        // 20 MB without any newline at all.
        check("b{".repeat(10 << 20).as_bytes(), "bad_record");
        check(nested(100_000).as_bytes(), "bad_record");
        check(b"{\"digest\":\"a\0b\"}\n", "bad_record");
        check(b"{\"a\":1\n{\"b\":\n{\n", "bad_record");
        check(b"{\"a\":1}{\"b\":2}\n", "bad_record");
        // Upstream errors pass through untouched, whatever else the record holds.
        check(failed.repeat(3).as_bytes(), "upstream");
    }
}

#[test]
fn payload_for_refuses_what_is_not_a_sha256_digest() {
    let c = |digest: &str| check("payload-for", &[], resolved(digest), "no_digest");
    c(&DIGEST.to_uppercase());
    c(&DIGEST.replace("sha256:", "SHA256:"));
    c(&DIGEST.replace("sha256:", "sha512:"));
    c(&DIGEST.replace("sha256:", "md5:"));
    c(&DIGEST[..DIGEST.len() - 1]);
    c(&format!("{DIGEST}0"));
    c(&format!("{DIGEST}\n"));
    c(&format!(" {DIGEST}"));
    c(&DIGEST.replace("634a", "634g"));
    c(&format!("sha512:{}", "a".repeat(128)));
    c("sha256:");
    c("");
    c("sha256:../../../etc/passwd");
    c(&DIGEST.replace('a', "\u{0430}")); // Cyrillic a
    c(&format!("{}\u{0}", &DIGEST[..DIGEST.len() - 1]));
    // Not a string at all.
    for v in ["1", "null", "true", "[]", "{}", &format!("[\"{DIGEST}\"]")] {
        check(
            "payload-for",
            &[],
            format!("{{\"registry\":\"r\",\"repository\":\"a\",\"digest\":{v}}}\n"),
            "no_digest",
        );
    }
}

#[test]
fn payload_for_reads_invalid_utf8_and_non_objects_as_failed_records() {
    // Invalid UTF-8 inside a record's digest and as a bare line.
    let mut line = resolved(DIGEST).into_bytes();
    let at = line.len() - 10;
    line[at] = 0xff;
    check("payload-for", &[], &line, "no_digest");
    check("payload-for", &[], b"\xff\xfe\xfd\n\xc3\x28\n", "no_digest");
    // JSON that is not an object is read as a reference, which has no digest.
    check(
        "payload-for",
        &[],
        "[1,2]\n\"str\"\n42\nnull\ntrue\n[[[[[[\n",
        "no_digest",
    );
    // A record without registry/repository cannot name what it signs.
    check(
        "payload-for",
        &[],
        format!("{{\"digest\":\"{DIGEST}\"}}\n"),
        "no_reference",
    );
}

#[test]
fn ten_thousand_mixed_hostile_lines_all_come_out_in_order() {
    let kinds = ["ok", "no_digest", "bad_record", "no_digest", "upstream"];
    let lines = [
        resolved(DIGEST),
        resolved("sha256:abc"),
        "{\"x\":\n".to_string(),
        "\u{1}\u{7f}../..\n".to_string(),
        "{\"error\":{\"tool\":\"t\",\"kind\":\"upstream\",\"message\":\"m\"}}\n".to_string(),
    ];
    let mut input = String::new();
    let mut expect = Vec::new();
    for i in 0..10_000 {
        input.push_str(&lines[i % lines.len()]);
        expect.push(kinds[i % kinds.len()]);
    }
    let records = check("payload-for", &[], &input, &expect.join(","));
    assert!(records.iter().step_by(5).all(|r| r.contains_key("payload")));
}

/// trail-for reads CloudTrail log files an attacker may have written to: deep nesting, records
/// that are not objects, NUL bytes and broken gzip are warnings, never a panic or a lost record.
#[test]
fn trail_for_survives_hostile_cloudtrail_files() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    write(
        "deep.json",
        format!(
            "{{\"Records\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .as_bytes(),
    );
    write(
        "records-not-objects.json",
        b"{\"Records\":[1,\"x\",null,[]]}",
    );
    write("not-json.json", b"\0\xff\xfe{{{");
    write("not-an-object.json", b"42");
    write(
        "truncated.json.gz",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
    );
    let mut gz = flate2_like_gzip(b"{\"Records\":[{\"eventName\":");
    gz.flush().unwrap();
    write("cut.json.gz", gz.get_ref());
    let input = resolved(DIGEST).repeat(3);
    let out = sigtrail_tests::run(
        sigtrail_tests::hostile::bounded_tool("trail-for")
            .args(["--cloudtrail", dir.path().to_str().unwrap()]),
        input.as_bytes(),
    );
    let case = "trail-for on hostile CloudTrail files";
    sigtrail_tests::hostile::assert_no_panic(case, &out);
    let records = sigtrail_tests::hostile::output_records(case, &out.stdout);
    assert_eq!(records.len(), 3, "{case}");
    for rec in &records {
        let warnings = rec["trail"]["warnings"].to_string();
        for name in [
            "deep.json",
            "not-json.json",
            "not-an-object.json",
            "truncated.json.gz",
        ] {
            assert!(
                warnings.contains(name),
                "{case}: no warning for {name}: {warnings}"
            );
        }
    }
}

/// A gzip member holding `data` uncompressed (stored blocks), written by hand so the test needs
/// no compression crate: the header, one stored block, then a deliberately missing trailer.
fn flate2_like_gzip(data: &[u8]) -> std::io::Cursor<Vec<u8>> {
    let mut v = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let len = data.len() as u16;
    v.push(1); // final stored block
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&(!len).to_le_bytes());
    v.extend_from_slice(data);
    std::io::Cursor::new(v)
}

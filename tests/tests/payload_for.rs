//! `payload-for` end to end: exact cosign bytes for every applicable vector, and refusals.

use base64::Engine;
use serde_json::{json, Value};
use sigtrail_tests::{run, shared_dir, tool};

fn records(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every valid vector whose `optional` is null or all strings: payload-for, given the vector's
/// reference (as digest-of would split it), digest and annotations, writes `payload.json` exactly.
#[test]
fn reproduces_every_applicable_vector_byte_for_byte() {
    let mut checked = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(shared_dir().join("vectors/valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let expected = std::fs::read(dir.join("payload.json")).unwrap();
        let doc: Value = serde_json::from_slice(&expected).unwrap();
        let optional = &doc["optional"];
        let Some(annotations) = (match optional {
            Value::Null => Some(Vec::new()),
            Value::Object(m) if m.values().all(Value::is_string) => Some(
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect(),
            ),
            _ => None,
        }) else {
            continue;
        };
        let reference = doc["critical"]["identity"]["docker-reference"]
            .as_str()
            .unwrap();
        let digest = doc["critical"]["image"]["docker-manifest-digest"]
            .as_str()
            .unwrap();
        let (registry, repository) = reference.split_once('/').unwrap();
        let input = json!({"registry": registry, "repository": repository, "digest": digest});
        let mut cmd = tool("payload-for");
        for a in &annotations {
            cmd.args(["-a", a]);
        }
        let out = run(&mut cmd, format!("{input}\n").as_bytes());
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), 1);
        let payload = base64::engine::general_purpose::STANDARD
            .decode(recs[0]["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&payload),
            String::from_utf8_lossy(&expected),
            "{}",
            dir.display()
        );
        checked.push(dir.file_name().unwrap().to_string_lossy().to_string());
    }
    // Eight of the nine valid vectors qualify (ci-02 has a numeric timestamp in `optional`).
    assert_eq!(checked.len(), 8, "checked {checked:?}");
}

#[test]
fn never_makes_a_payload_without_a_digest() {
    let input = concat!(
        "{\"registry\":\"r.example\",\"repository\":\"app\",\"tag\":\"v1\"}\n",
        "{\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"sha256:abc\"}\n",
        "{\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"}\n",
    );
    let out = run(
        tool("payload-for").args(["-a", "note=a,b=c"]),
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 3, "nothing dropped");
    assert_eq!(recs[0]["error"]["kind"], "no_digest");
    assert!(recs[0].get("payload").is_none());
    assert_eq!(recs[1]["error"]["kind"], "no_digest");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(recs[2]["payload"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(payload)
        .unwrap()
        .ends_with(r#""optional":{"note":"a,b=c"}}"#));
}

/// Without digest-of's fields, the identity comes from `image` as cosign names it: registry host
/// and repository, no tag, Docker Hub names expanded.
#[test]
fn identity_from_image_reference() {
    let d = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";
    let input = format!(
        "{{\"image\":\"busybox:1.36\",\"digest\":\"{d}\"}}\n{{\"image\":\"127.0.0.1:5000/team/app:v1@{d}\",\"digest\":\"{d}\"}}\n{{\"image\":\"../etc\",\"digest\":\"{d}\"}}\n"
    );
    let out = run(&mut tool("payload-for"), input.as_bytes());
    let recs = records(&out.stdout);
    let identity = |r: &Value| {
        let p = base64::engine::general_purpose::STANDARD
            .decode(r["payload"].as_str().unwrap())
            .unwrap();
        let doc: Value = serde_json::from_slice(&p).unwrap();
        doc["critical"]["identity"]["docker-reference"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(identity(&recs[0]), "index.docker.io/library/busybox");
    assert_eq!(identity(&recs[1]), "127.0.0.1:5000/team/app");
    assert_eq!(recs[2]["error"]["kind"], "bad_reference");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = run(tool("payload-for").args(["-a", "novalue", "x"]), b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not KEY=VALUE"));
    let out = run(
        tool("payload-for")
            .args(["--github", "x"])
            .env_remove("GITHUB_SHA"),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GITHUB_SHA"));
}

#[test]
fn github_context_goes_under_documented_keys() {
    let mut cmd = tool("payload-for");
    cmd.arg("--github");
    for (var, val) in [
        ("GITHUB_SHA", "0123abcd"),
        ("GITHUB_RUN_ID", "42"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        (
            "GITHUB_WORKFLOW_REF",
            "org/repo/.github/workflows/release.yml@refs/heads/main",
        ),
        ("GITHUB_REPOSITORY", "org/repo"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_ACTOR", "octocat"),
    ] {
        cmd.env(var, val);
    }
    let input = "{\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"}\n";
    let out = run(&mut cmd, input.as_bytes());
    assert!(out.status.success());
    let rec = &records(&out.stdout)[0];
    let payload = base64::engine::general_purpose::STANDARD
        .decode(rec["payload"].as_str().unwrap())
        .unwrap();
    let doc: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(doc["optional"]["github.sha"], "0123abcd");
    assert_eq!(doc["optional"]["github.run_id"], "42");
    assert_eq!(
        doc["optional"]["github.workflow_ref"],
        "org/repo/.github/workflows/release.yml@refs/heads/main"
    );
    assert_eq!(doc["optional"]["github.actor"], "octocat");
}

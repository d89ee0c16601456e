//! Fuzz target: the strict simple-signing payload parser (`Payload::parse`), on arbitrary bytes.
//!
//! A payload that parses must serialize (`to_bytes`, the bytes payload-for signs) to a payload
//! that parses to the same claims; what the parser rejects it rejects with a clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigtrail::payload::Payload;

fuzz_target!(|data: &[u8]| {
    let p = match Payload::parse(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                matches!(e.kind, "bad_payload" | "payload_too_large"),
                "{e:?}"
            );
            assert!(!e.message.is_empty());
            return;
        }
    };
    let _ = p.annotations();
    let bytes = p.to_bytes();
    let again = Payload::parse(&bytes).unwrap_or_else(|e| {
        panic!(
            "{p:?} serializes to {:?}, which does not parse: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(p, again);
    // payload-for's own construction from these claims parses to the same claims.
    let made = Payload::new(&p.docker_reference, &p.manifest_digest, &p.annotations());
    let made = Payload::parse(&made.to_bytes()).expect("a payload payload-for makes parses");
    assert_eq!(
        (&made.docker_reference, &made.manifest_digest, &made.kind),
        (&p.docker_reference, &p.manifest_digest, &p.kind)
    );
});

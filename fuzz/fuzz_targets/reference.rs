//! Fuzz target: every parser of image and key references, on arbitrary text.
//!
//! `ImageRef::parse` (and `parse_repository`, `check_digest`, cosign tag names), the lenient
//! identity parser check-sig compares signed `docker-reference`s with, and `awskms://` key
//! references. A reference that parses must print back to a reference that parses to the same
//! thing, and the identity parser must agree with the strict one on what repository it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigtrail::reference::{check_digest, ImageRef};
use sigtrail::verify::reference::RefName;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s = text.as_ref();

    let _ = check_digest(s);
    let _ = sigtrail::cosign::signature_tag(s);
    let _ = sigtrail::resolve::is_cosign_tag(s);
    let _ = sigtrail::payload::is_sha256_digest(s);
    if sigtrail::kms::is_kms_reference(s) {
        let _ = sigtrail::kms::KeyReference::parse(s);
    }
    let lenient = RefName::parse_lenient(s);

    if let Ok(repo) = ImageRef::parse_repository(s) {
        assert!(
            repo.tag.is_none() && repo.digest.is_none(),
            "{s:?} -> {repo:?}"
        );
    }
    let record = sigtrail::resolve::image_record(s);
    assert_eq!(
        sigtrail::resolve::record_reference(&record).ok().as_deref(),
        Some(s)
    );

    let Ok(r) = ImageRef::parse(s) else { return };
    // What a tool writes (`ref`, the signed identity) must read back as the same image.
    let printed = r.to_string();
    let again = ImageRef::parse(&printed)
        .unwrap_or_else(|e| panic!("{s:?} parsed to {r:?}, whose {printed:?} does not: {e}"));
    assert_eq!(r, again, "{s:?} -> {printed:?}");
    if let Some(d) = &r.digest {
        let pinned = r.with_digest(d).to_string();
        assert_eq!(
            ImageRef::parse(&pinned).ok().as_ref(),
            Some(&r.with_digest(d))
        );
    }
    let name = r.name();
    let repo = ImageRef::parse_repository(&name)
        .unwrap_or_else(|e| panic!("{s:?}: its name {name:?} is not a repository: {e}"));
    assert_eq!(
        (repo.registry, repo.repository),
        (r.registry.clone(), r.repository.clone())
    );
    // The identity check reads the same repository out of the reference as digest-of does.
    let from_parts = RefName::from_parts(&r.registry, &r.repository, r.tag.as_deref());
    assert!(
        lenient.same_repository(&from_parts),
        "{s:?}: identity name {:?}, parsed name {:?}",
        lenient.name,
        from_parts.name
    );
});

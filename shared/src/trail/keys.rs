//! Which KMS key a `Sign` event used, against the keys an operator or a record names.
//!
//! Key references: `awskms:///KEY` and `awskms://ENDPOINT/KEY` URIs, or the bare KEY: a key id,
//! a key ARN, `alias/NAME`, or an alias ARN (URIs are parsed by [`crate::kms::KeyReference`]). An alias is resolved once to its key ARN with KMS `DescribeKey` when
//! KMS answers; until then it matches only `Sign` events whose `keyId` names the same alias.

use super::event::Event;
use super::event::KmsSign;

/// A key named by the operator or a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// What was given.
    pub text: String,
    /// The key ARN, when given or resolved.
    pub arn: Option<String>,
    /// The key id (UUID or `mrk-...`), when given or taken from the ARN.
    pub key_id: Option<String>,
    /// `alias/NAME`, when given as an alias.
    pub alias: Option<String>,
    /// Region and account, from an ARN.
    pub region: Option<String>,
    pub account: Option<String>,
}

impl KeySpec {
    pub fn parse(text: &str) -> Result<KeySpec, String> {
        // `awskms://` URIs go through the signing module's parser (and its checks).
        let uri;
        let key = if crate::kms::is_kms_reference(text) {
            uri = crate::kms::KeyReference::parse(text).map_err(|e| e.message)?;
            uri.key_id.as_str()
        } else {
            text
        };
        if key.is_empty() {
            return Err(format!(
                "{text}: no key; use awskms:///KEY-ID, a key ARN or alias/NAME"
            ));
        }
        let mut spec = KeySpec {
            text: text.to_string(),
            ..KeySpec::default()
        };
        if let Some(rest) = key.strip_prefix("arn:") {
            // arn:PARTITION:kms:REGION:ACCOUNT:key/ID | alias/NAME
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || parts[1] != "kms" {
                return Err(format!("{text}: not a KMS key or alias ARN"));
            }
            spec.region = Some(parts[2].to_string()).filter(|s| !s.is_empty());
            spec.account = Some(parts[3].to_string()).filter(|s| !s.is_empty());
            if let Some(id) = parts[4].strip_prefix("key/") {
                spec.arn = Some(key.to_string());
                spec.key_id = Some(id.to_string());
            } else if parts[4].starts_with("alias/") {
                spec.alias = Some(parts[4].to_string());
            } else {
                return Err(format!("{text}: not a KMS key or alias ARN"));
            }
        } else if key.starts_with("alias/") {
            spec.alias = Some(key.to_string());
        } else {
            spec.key_id = Some(key.to_string());
        }
        Ok(spec)
    }

    /// Whether the spec still needs `DescribeKey` to know its key.
    pub fn needs_resolution(&self) -> bool {
        self.arn.is_none() && self.alias.is_some()
    }

    /// The text to give `DescribeKey`.
    pub fn describe_id(&self) -> String {
        match (&self.alias, &self.region, &self.account) {
            (Some(a), Some(r), Some(acct)) => format!("arn:aws:kms:{r}:{acct}:{a}"),
            (Some(a), _, _) => a.clone(),
            _ => self.key_id.clone().unwrap_or_default(),
        }
    }

    /// Records the key ARN an alias resolved to.
    pub fn resolved(mut self, arn: &str) -> KeySpec {
        if let Ok(k) = KeySpec::parse(arn) {
            self.arn = k.arn;
            self.key_id = k.key_id;
            self.region = k.region;
            self.account = k.account;
        }
        self
    }

    /// Whether `event` (a KMS `Sign`) used this key.
    /// Whether a `Sign` event (or a failed `Sign` attempt) used this key.
    pub fn matches(&self, event: &Event) -> bool {
        let Some(sign) = event.as_sign().or(event.as_failed_sign().map(|f| &f.sign)) else {
            return false;
        };
        self.matches_sign(sign, event.region.as_deref(), event.account.as_deref())
    }

    fn matches_sign(&self, sign: &KmsSign, region: Option<&str>, account: Option<&str>) -> bool {
        // The key ARN in `resources` is the truth when the event has it.
        if let Some(event_arn) = &sign.key_arn {
            if let Some(arn) = &self.arn {
                return arn == event_arn;
            }
            if let Some(id) = &self.key_id {
                return event_arn.rsplit_once("key/").is_some_and(|(_, k)| k == id);
            }
        } else if let Some(id) = &self.key_id {
            // No ARN: the keyId as the caller gave it, in the spec's region and account.
            let given = sign.key_id.as_deref().unwrap_or("");
            let same = given == id || self.arn.as_deref() == Some(given);
            return same && self.in_scope(region, account);
        }
        // An unresolved alias: only a call that named the same alias, in the same place.
        match (&self.alias, sign.key_id.as_deref()) {
            (Some(alias), Some(given)) => {
                let given_alias = given
                    .strip_prefix("arn:")
                    .and_then(|r| r.splitn(5, ':').nth(4))
                    .unwrap_or(given);
                given_alias == alias && self.in_scope(region, account)
            }
            _ => false,
        }
    }

    fn in_scope(&self, region: Option<&str>, account: Option<&str>) -> bool {
        let ok = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got.is_none_or(|g| g == w))
        };
        ok(&self.region, region) && ok(&self.account, account)
    }
}

/// Resolves aliases to key ARNs with `DescribeKey`; keys that cannot be resolved are returned
/// as they are, with a warning.
pub async fn resolve(specs: Vec<KeySpec>, warnings: &mut Vec<String>) -> Vec<KeySpec> {
    if !specs.iter().any(KeySpec::needs_resolution) {
        return specs;
    }
    let mut out = Vec::with_capacity(specs.len());
    let mut clients: std::collections::HashMap<Option<String>, aws_sdk_kms::Client> =
        std::collections::HashMap::new();
    for spec in specs {
        if !spec.needs_resolution() {
            out.push(spec);
            continue;
        }
        let region = spec.region.clone();
        if !clients.contains_key(&region) {
            let config = crate::aws::sdk_config(region.as_deref()).await;
            clients.insert(region.clone(), aws_sdk_kms::Client::new(&config));
        }
        let client = &clients[&region];
        let answer = client
            .describe_key()
            .key_id(spec.describe_id())
            .send()
            .await;
        match answer
            .as_ref()
            .ok()
            .and_then(|a| a.key_metadata())
            .and_then(|m| m.arn())
        {
            Some(arn) => out.push(spec.clone().resolved(arn)),
            None => {
                let why = match answer {
                    Err(e) => format!(
                        "{}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    ),
                    Ok(_) => "no key ARN in the answer".into(),
                };
                warnings.push(format!(
                    "key {}: cannot resolve the alias with KMS DescribeKey ({why}); matching Sign \
                     events that name the alias only",
                    spec.text
                ));
                out.push(spec);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::event::Detail;

    fn sign(key_id: &str, key_arn: Option<&str>, region: &str, account: &str) -> Event {
        Event {
            id: None,
            time: None,
            source: "kms.amazonaws.com".into(),
            name: "Sign".into(),
            region: Some(region.into()),
            account: Some(account.into()),
            request_id: None,
            principal: Default::default(),
            detail: Detail::Sign(KmsSign {
                key_id: Some(key_id.into()),
                key_arn: key_arn.map(str::to_string),
                ..KmsSign::default()
            }),
            file: None,
        }
    }

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn key_references() {
        let k = KeySpec::parse(&format!("awskms:///{ARN}")).unwrap();
        assert_eq!(k.arn.as_deref(), Some(ARN));
        assert_eq!(k.key_id.as_deref(), Some(ID));
        assert_eq!(k.region.as_deref(), Some("us-east-1"));
        let k = KeySpec::parse("awskms://localhost:4566/alias/cosign").unwrap();
        assert!(KeySpec::parse("awskms:///not a key").is_err());
        assert_eq!(k.alias.as_deref(), Some("alias/cosign"));
        assert!(k.needs_resolution());
        let k = KeySpec::parse("arn:aws:kms:eu-west-1:1:alias/cosign").unwrap();
        assert_eq!(k.describe_id(), "arn:aws:kms:eu-west-1:1:alias/cosign");
        assert!(KeySpec::parse("awskms:///").is_err());
        assert!(KeySpec::parse("arn:aws:s3:::bucket").is_err());
    }

    #[test]
    fn matching() {
        let by_arn = KeySpec::parse(ARN).unwrap();
        let by_id = KeySpec::parse(ID).unwrap();
        let alias = KeySpec::parse("alias/cosign").unwrap();
        let resolved = alias.clone().resolved(ARN);
        let ev = sign("alias/cosign", Some(ARN), "us-east-1", "111122223333");
        for k in [&by_arn, &by_id, &alias, &resolved] {
            assert!(k.matches(&ev), "{k:?}");
        }
        let other_key = sign(
            "alias/cosign",
            Some("arn:aws:kms:us-east-1:111122223333:key/ffffffff-12ab-34cd-56ef-1234567890ab"),
            "us-east-1",
            "111122223333",
        );
        for k in [&by_arn, &by_id, &resolved] {
            assert!(!k.matches(&other_key), "{k:?}");
        }
        // Same key id in another account or region is another key.
        let elsewhere = sign(
            ID,
            Some(&ARN.replace("111122223333", "999999999999")),
            "us-east-1",
            "999999999999",
        );
        assert!(!by_arn.matches(&elsewhere));
        let other_region = sign(
            ID,
            Some(&ARN.replace("us-east-1", "us-west-2")),
            "us-west-2",
            "111122223333",
        );
        assert!(!by_arn.matches(&other_region));
        // An alias ARN only matches in its own account and region.
        let alias_arn = KeySpec::parse("arn:aws:kms:us-east-1:111122223333:alias/cosign").unwrap();
        let ev_no_arn = sign("alias/cosign", None, "us-east-1", "111122223333");
        assert!(alias_arn.matches(&ev_no_arn));
        assert!(!alias_arn.matches(&sign("alias/cosign", None, "us-west-2", "111122223333")));
        assert!(!alias.matches(&sign("alias/other", None, "us-east-1", "1")));
    }
}

//! sigtrail: the library behind the six tools (`digest-of`, `payload-for`, `kms-sign`,
//! `attach-sig`, `check-sig`, `trail-for`). See ARCHITECTURE.md for the map.

pub mod attach;
pub mod aws;
pub mod bundle;
pub mod cosign;
pub mod crypto;
pub mod ecr;
pub mod error;
pub mod filter;
pub mod gojson;
pub mod harness;
pub mod kms;
pub mod payload;
pub mod record;
pub mod reference;
pub mod registry;
pub mod resolve;
pub mod trail;
pub mod verify;
pub mod wildcard;

pub use error::{Error, Result};
pub use record::Record;

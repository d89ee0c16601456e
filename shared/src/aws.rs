//! AWS SDK configuration: one place that loads the default credential and region chain.
//!
//! The SDK reads `AWS_REGION`, `AWS_PROFILE`, web identity (CI) and `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` (an emulator) by itself; tools only override the region when a
//! key ARN or a registry host names one.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The shared SDK configuration, with `region` overriding the chain's region when given.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// One line for an SDK error: the service's `code: message` (or the code alone), else what went
/// wrong on the way (no answer, an answer that could not be read), never the SDK's debug dump.
pub fn error_detail<E>(e: &E) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error,
{
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
    }
}

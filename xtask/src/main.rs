//! Developer tasks (`cargo xtask ...`): placeholder replaced by the environment work.
fn main() {}

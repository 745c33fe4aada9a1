//! TEMPORARY until the oidc branch merges.
pub mod discovery;

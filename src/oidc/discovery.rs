//! TEMPORARY
pub fn openid_configuration(issuer: &str, algs: &[&str]) -> serde_json::Value {
    serde_json::json!({"issuer": issuer, "algs": algs})
}
pub fn authorization_server_metadata(issuer: &str, algs: &[&str]) -> serde_json::Value {
    serde_json::json!({"issuer": issuer, "algs": algs})
}

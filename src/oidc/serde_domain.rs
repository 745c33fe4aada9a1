//! Serde for the domain newtypes that travel inside stored protocol state. Deserialising
//! goes through the types' `parse` constructors, so stored state is re-validated.

/// `ClientId` as its wire string.
pub(crate) mod client_id {
    use crate::domain::ClientId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &ClientId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClientId, D::Error> {
        let raw = String::deserialize(d)?;
        ClientId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `Scope` as its space-delimited string (RFC 6749 §3.3).
pub(crate) mod scope {
    use crate::domain::Scope;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Scope, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
        let raw = String::deserialize(d)?;
        Scope::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `Option<ResourceUri>` as an optional string (RFC 8707 §2).
pub(crate) mod opt_resource {
    use crate::domain::ResourceUri;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<ResourceUri>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(r) => s.serialize_some(r.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ResourceUri>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        raw.map(|r| ResourceUri::parse(&r).map_err(serde::de::Error::custom))
            .transpose()
    }
}
